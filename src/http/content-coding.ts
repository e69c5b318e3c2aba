/**
 * gzip for large bodies made once (Python index pages and npm package
 * documents over 8 KiB): compressed once, when the body is made, and sent
 * to clients that accept it (pip and npm do), as the registries themselves
 * send them. npmjs.org's document of @types/node, 9.4 MB, is 480 KB gzipped
 * (37 ms to compress, once); express's, 565 KB, is 50 KB. Small bodies go
 * as they are: compressing them saves little.
 */
import { gzipSync } from 'node:zlib';

/** A body and its compressed variant, each with its own strong ETag (RFC 9110 §8.8.3: a representation each). */
export interface Gzipped {
  readonly body: Buffer;
  readonly contentLength: string;
  readonly etag: string;
}

/** Bodies up to this size (and any held as a string, see `servedBody`) are sent as they are. */
const GZIP_MIN = 8 * 1024;

/** The gzip variant of `body`, whose identity ETag is `etag` (quoted); null for a small body. */
export function gzipVariant(body: string | Buffer, etag: string): Gzipped | null {
  if (typeof body === 'string' || body.length <= GZIP_MIN) return null;
  const gz = gzipSync(body);
  return { body: gz, contentLength: String(gz.length), etag: `${etag.slice(0, -1)}-gzip"` };
}

/**
 * Whether `Accept-Encoding` (RFC 9110 §12.5.3) takes gzip: listed as
 * `gzip` or `x-gzip`, or covered by `*`, with a q-value above 0.
 */
export function acceptsGzip(acceptEncoding: string | undefined): boolean {
  if (acceptEncoding === undefined) return false;
  let star = 0;
  for (const part of acceptEncoding.split(',')) {
    const [coding, ...params] = part.split(';').map((p) => p.trim().toLowerCase());
    let q = 1;
    for (const p of params) if (p.startsWith('q=')) q = Number(p.slice(2));
    if (!Number.isFinite(q)) q = 0;
    if (coding === 'gzip' || coding === 'x-gzip') return q > 0;
    if (coding === '*') star = q;
  }
  return star > 0;
}
