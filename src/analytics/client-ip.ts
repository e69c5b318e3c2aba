/**
 * The client address written in analytics lines (SPEC §9): behind trusted
 * proxies, the right-most `X-Forwarded-For` entry that is not itself a
 * trusted proxy; else the socket's address. Optionally anonymized (IPv4 /24,
 * IPv6 /48) before it is written.
 */
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { plainAddress, type TrustedProxies } from '../http/trusted-proxies.ts';

export function clientIp(
  peer: string | undefined,
  peerTrusted: boolean,
  forwardedFor: string | string[] | undefined,
  trusted: TrustedProxies,
): string | null {
  const socket = peer === undefined ? null : plainAddress(peer);
  if (!peerTrusted || forwardedFor === undefined) return socket;
  const hops = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor)
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h !== '');
  for (let i = hops.length - 1; i >= 0; i--) {
    const address = forwardedAddress(hops[i]);
    if (address === null || !trusted.trusts(address)) return address;
  }
  return hops.length > 0 ? forwardedAddress(hops[0]) : socket;
}

const BRACKETED = /^\[([^\]]*)\](?::\d+)?$/;
const IPV4_PORT = /^([\d.]+):\d+$/;

/**
 * An `X-Forwarded-For` entry as an address. Some load balancers add the
 * port (`203.0.113.7:51234`, `[2001:db8::7]:443`): it is dropped. Anything
 * that is not an address (`unknown`, RFC 7239's obfuscated names, junk) is
 * null: the client is not known, and no such text reaches a line.
 */
export function forwardedAddress(entry: string): string | null {
  const address = BRACKETED.exec(entry)?.[1] ?? IPV4_PORT.exec(entry)?.[1] ?? entry;
  return isIP(address) === 0 ? null : plainAddress(address);
}

/** The address as a line holds it: anonymized when asked. */
export function lineIp(ip: string | null, anonymize: boolean): string | null {
  return anonymize ? anonymizeIp(ip) : ip;
}

/** Zero the host part: IPv4 to its /24, IPv6 to its /48. Anything else is dropped (null), so that nothing passes whole. */
export function anonymizeIp(ip: string | null): string | null {
  if (ip === null) return null;
  if (isIPv4(ip)) return ip.slice(0, ip.lastIndexOf('.')) + '.0';
  if (isIPv6(ip)) return `${firstGroups(ip).join(':')}::`;
  return null;
}

/** The first three groups of an IPv6 address, a `::` expanded (the /48). */
function firstGroups(ip: string): string[] {
  const [head, tail] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  // Without `::` all eight groups are there (or six and an IPv4 tail).
  if (tail === undefined) return h.slice(0, 3);
  const t = tail === '' ? [] : tail.split(':');
  return [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t].slice(0, 3);
}
