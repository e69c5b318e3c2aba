/**
 * The client address written in analytics lines (SPEC §9): behind trusted
 * proxies, the right-most `X-Forwarded-For` entry that is not itself a
 * trusted proxy; else the socket's address. Optionally anonymized (IPv4 /24,
 * IPv6 /48) before it is written.
 */
import { isIPv4, isIPv6 } from 'node:net';
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
    if (!trusted.trusts(hops[i])) return plainAddress(hops[i]);
  }
  return hops.length > 0 ? plainAddress(hops[0]) : socket;
}

/** Zero the host part: IPv4 to its /24, IPv6 to its /48. Other text is kept. */
export function anonymizeIp(ip: string | null): string | null {
  if (ip === null) return null;
  if (isIPv4(ip)) return ip.slice(0, ip.lastIndexOf('.')) + '.0';
  if (isIPv6(ip)) {
    const full = expandIPv6(ip);
    return full === null ? ip : `${full.slice(0, 3).join(':')}::`;
  }
  return ip;
}

function expandIPv6(ip: string): string[] | null {
  const [head, tail] = ip.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  if (tail === undefined) return h.length === 8 ? h : null;
  return [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
}
