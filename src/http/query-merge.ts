/**
 * Merging the request's query string into a redirect target (SPEC §5):
 * the target's own parameters first, then the request's parameters whose
 * names the target does not have, first occurrence of a name wins, each
 * re-encoded with RFC 3986 percent-encoding (space is `%20`).
 */
import { encodeUnreserved, formDecode } from '../templates/percent.ts';

/** Returns the merged URL, or null when the request query has malformed encoding. */
export function mergeQuery(target: string, requestQuery: string): string | null {
  if (requestQuery === '') return target;
  const hash = target.indexOf('#');
  const base = hash === -1 ? target : target.slice(0, hash);
  const fragment = hash === -1 ? '' : target.slice(hash);
  const q = base.indexOf('?');
  const seen = new Set<string>();
  if (q !== -1) {
    for (const pair of base.slice(q + 1).split('&')) {
      if (pair === '') continue;
      const eq = pair.indexOf('=');
      const name = formDecode(eq === -1 ? pair : pair.slice(0, eq));
      if (name !== null) seen.add(name);
    }
  }
  const added: string[] = [];
  for (const pair of requestQuery.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = formDecode(eq === -1 ? pair : pair.slice(0, eq));
    const value = eq === -1 ? null : formDecode(pair.slice(eq + 1));
    if (name === null || (eq !== -1 && value === null)) return null;
    if (seen.has(name)) continue;
    seen.add(name);
    added.push(value === null ? encodeUnreserved(name) : `${encodeUnreserved(name)}=${encodeUnreserved(value)}`);
  }
  if (added.length === 0) return target;
  const sep = q === -1 ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&';
  return base + sep + added.join('&') + fragment;
}
