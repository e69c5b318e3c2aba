/**
 * The host a request is matched against (SPEC §2): the first
 * `X-Forwarded-Host` value when the peer is a trusted proxy, else `Host`;
 * lower case, without port and trailing dot.
 */
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Hot path. `authority` is that of a request target in absolute form,
 * which replaces `Host` (RFC 9112 §3.2.2); a trusted proxy's
 * `X-Forwarded-Host` still names the host the client asked for.
 */
export function requestHost(headers: IncomingHttpHeaders, peerTrusted: boolean, authority?: string): string {
  let raw: string | undefined;
  if (peerTrusted) {
    const forwarded = headers['x-forwarded-host'];
    if (typeof forwarded === 'string' && forwarded !== '') {
      const comma = forwarded.indexOf(',');
      raw = (comma === -1 ? forwarded : forwarded.slice(0, comma)).trim();
    }
  }
  raw ??= authority ?? headers.host ?? '';
  return normalizeHost(raw);
}

/**
 * Hot path. How many Host field lines `raw` (name, value, ...) has, counted
 * up to 2. A server must answer 400 to more than one, and to none in an
 * HTTP/1.1 request (RFC 9112 §3.2): node keeps the first, where a proxy in
 * front may have gone by another.
 */
export function hostFieldLines(raw: readonly string[]): 0 | 1 | 2 {
  let seen: 0 | 1 = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (seen === 1) return 2;
    seen = 1;
  }
  return seen;
}

const ABSOLUTE_FORM = /^https?:\/\/([^/?#]*)(.*)$/is;

/**
 * A request target in absolute form (`http://host/path?query`, RFC 9112
 * §3.2.2), which a server must accept although clients send it only to
 * proxies: its authority (without user info) and its path and query, `/`
 * standing for an empty path. Null for a target in any other form.
 */
export function absoluteForm(target: string): { authority: string; pathAndQuery: string } | null {
  const m = ABSOLUTE_FORM.exec(target);
  if (m === null) return null;
  const authority = m[1].slice(m[1].lastIndexOf('@') + 1);
  return { authority, pathAndQuery: m[2][0] === '/' ? m[2] : `/${m[2]}` };
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
