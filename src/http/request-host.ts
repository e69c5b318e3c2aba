/**
 * The host a request is matched against (SPEC §2): the first
 * `X-Forwarded-Host` value when the peer is a trusted proxy, else `Host`;
 * lower case, without port and trailing dot.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** Hot path. */
export function requestHost(headers: IncomingHttpHeaders, peerTrusted: boolean): string {
  let raw: string | undefined;
  if (peerTrusted) {
    const forwarded = headers['x-forwarded-host'];
    if (typeof forwarded === 'string' && forwarded !== '') {
      const comma = forwarded.indexOf(',');
      raw = (comma === -1 ? forwarded : forwarded.slice(0, comma)).trim();
    }
  }
  raw ??= headers.host ?? '';
  return normalizeHost(raw);
}

export function normalizeHost(raw: string): string {
  let host = raw;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    host = close === -1 ? host : host.slice(0, close + 1);
  } else {
    const colon = host.indexOf(':');
    if (colon !== -1) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host.toLowerCase();
}
