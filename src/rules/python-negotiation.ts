/**
 * Content negotiation for the simple API (PEP 691 §"Version + Format
 * Selection"): `Accept` with q-values (RFC 9110 §12.5.1) or the `format`
 * query parameter, and `If-None-Match`
 * (RFC 9110 §13.1.2, weak comparison).
 */

/** What the index can answer, in the order preferred on a tie. */
export const PYTHON_TYPES = [
  'text/html',
  'application/vnd.pypi.simple.v1+html',
  'application/vnd.pypi.simple.v1+json',
] as const;

export type PythonType = (typeof PYTHON_TYPES)[number];

/** PEP 691: `latest` means the newest version the server has, v1. */
function canonical(range: string): string {
  return range.replace('vnd.pypi.simple.latest+', 'vnd.pypi.simple.v1+');
}

/** How well `range` (`type/sub`, `type/*`, `*\/*`) matches `type`: -1 no, higher is more specific. */
function specificity(range: string, type: string): number {
  if (range === type) return 2;
  if (range === '*/*') return 0;
  if (range.endsWith('/*') && type.startsWith(range.slice(0, -1))) return 1;
  return -1;
}

/**
 * The representation to send, or null for 406. No `Accept` means HTML
 * (PEP 503 is the default); ties go to HTML, then to JSON.
 */
export function negotiate(accept: string | undefined): PythonType | null {
  if (accept === undefined || accept.trim() === '') return 'text/html';
  const ranges = accept.split(',').map((part) => {
    const [range, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    let q = 1;
    for (const p of params) if (p.startsWith('q=')) q = Number(p.slice(2));
    return { range: canonical(range), q: Number.isFinite(q) ? q : 0 };
  });
  let best: PythonType | null = null;
  let bestQ = 0;
  for (const type of PYTHON_TYPES) {
    // The most specific matching range decides this type's q.
    let q = -1;
    let spec = -1;
    for (const r of ranges) {
      const s = specificity(r.range, type);
      if (s > spec) {
        spec = s;
        q = r.q;
      }
    }
    if (spec >= 0 && q > bestQ) {
      best = type;
      bestQ = q;
    }
  }
  return best;
}

/**
 * PEP 691's optional `format` query parameter: one content type, which
 * takes precedence over `Accept`. Undefined when the query has none; null
 * (406) for a type the index cannot answer.
 */
export function formatRequested(query: string): PythonType | null | undefined {
  const format = new URLSearchParams(query).get('format');
  if (format === null) return undefined;
  // A `+` typed into a browser's address bar arrives as a space, in form encoding.
  const type = canonical(format.replaceAll(' ', '+').toLowerCase());
  return PYTHON_TYPES.find((t) => t === type) ?? null;
}

/** True when `If-None-Match` lists `etag` or is `*`. */
export function etagMatches(ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false;
  if (ifNoneMatch.trim() === '*') return true;
  for (const tag of ifNoneMatch.split(',')) {
    const t = tag.trim();
    if ((t.startsWith('W/') ? t.slice(2) : t) === etag) return true;
  }
  return false;
}
