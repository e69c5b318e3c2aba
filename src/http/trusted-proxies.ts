/**
 * Which peers may set `X-Forwarded-Host` and `X-Forwarded-For` (SPEC §2).
 * Built once from `--trust-proxy`: `all`, `none`, or addresses and CIDRs;
 * the default trusts loopback only (a reverse proxy on the same machine).
 */
import { BlockList, isIP } from 'node:net';

export interface TrustedProxies {
  /** True when `address` (as the socket reports it) is a trusted proxy. */
  trusts(address: string | undefined): boolean;
}

export const DEFAULT_TRUST = ['loopback'] as const;

/** Strips the IPv4-mapped prefix (`::ffff:127.0.0.1`) a dual-stack socket reports. */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Throws on an entry that is not an address, a CIDR, `loopback`, `all` or `none`. */
export function trustedProxies(entries: readonly string[]): TrustedProxies {
  const list = entries.flatMap((e) => e.split(',')).map((e) => e.trim()).filter((e) => e !== '');
  if (list.includes('all')) return { trusts: () => true };
  const block = new BlockList();
  for (const entry of list) {
    if (entry === 'none') continue;
    if (entry === 'loopback') {
      block.addSubnet('127.0.0.0', 8, 'ipv4');
      block.addAddress('::1', 'ipv6');
      continue;
    }
    const [address, bits] = entry.split('/');
    const family = isIP(address);
    if (family === 0) throw new Error(`--trust-proxy: "${entry}" is not an IP address or CIDR`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) block.addAddress(address, type);
    else {
      const prefix = Number(bits);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) {
        throw new Error(`--trust-proxy: "${entry}" has a bad prefix length`);
      }
      block.addSubnet(address, prefix, type);
    }
  }
  return {
    trusts(address) {
      if (address === undefined) return false;
      const plain = plainAddress(address);
      const family = isIP(plain);
      return family !== 0 && block.check(plain, family === 4 ? 'ipv4' : 'ipv6');
    },
  };
}
