/**
 * The npm document worker, a worker thread: it fetches package documents,
 * parses and rewrites them, and renders them for an origin (bytes, ETag,
 * gzip), so that a document of megabytes costs the request path a message
 * and not a stall. On the main thread, a 20 MB document held every other
 * request for 0.2 s when it was loaded, and again for each origin it was
 * rendered for.
 *
 * Tarball URLs are rewritten once, to a placeholder origin; rendering only
 * replaces the placeholder with the origin of the request. The worker keeps
 * nothing between messages.
 */
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { gzipVariant } from '../http/content-coding.ts';
import { withCause } from '../proxy/backend-error.ts';
import { asciiHost, encodeNonPrintable } from '../templates/percent.ts';

const PLACEHOLDER = 'https://gateway-origin.invalid';

export type WorkerRequest =
  | { readonly kind: 'load'; readonly url: string; readonly name: string; readonly headers: Record<string, string>; readonly timeout: number }
  | { readonly kind: 'render'; readonly text: Uint8Array; readonly origin: string };

/**
 * A package document, rewritten. Its text is UTF-8 in shared memory: the
 * main thread keeps it and sends it back to be rendered without a copy
 * either way (a 20 MB string took 11 ms to send, and as long to receive).
 */
export interface LoadedDocument {
  readonly kind: 'document';
  readonly etag: string | null;
  /** The backend's Content-Type, as it came. */
  readonly contentType: string | null;
  /** The whole document's JSON, tarballs at the placeholder origin. */
  readonly text: Uint8Array;
  /** Version → where its own document's JSON is in `text`: [start, end). */
  readonly versions: Map<string, readonly [number, number]>;
  /** dist-tag → version. */
  readonly tags: Map<string, string>;
  /** Tarball file name → the backend's URL for it. */
  readonly tarballs: Map<string, string>;
}

export type LoadResult = LoadedDocument | { readonly kind: 'not-modified' | 'not-found' } | { readonly kind: 'failed'; readonly reason: string };

/** A rendered document; the bodies' memory is handed over to the main thread. */
export interface RenderedBytes {
  readonly body: Uint8Array;
  readonly etag: string;
  readonly gzip: { readonly body: Uint8Array; readonly etag: string } | null;
}

interface VersionDoc {
  dist?: { tarball?: unknown };
}

/**
 * fetch, once more when the connection failed before any answer (undici's
 * "other side closed"): a kept-alive connection that the backend closed
 * as it was reused, as the registry proxy's client retries it too.
 */
async function fetchOnceMore(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    if ((e as { cause?: { code?: unknown } }).cause?.code !== 'UND_ERR_SOCKET' || init.signal?.aborted === true) throw e;
    return fetch(url, init);
  }
}

async function load(r: Extract<WorkerRequest, { kind: 'load' }>): Promise<LoadResult> {
  try {
    const res = await fetchOnceMore(r.url, { headers: r.headers, signal: AbortSignal.timeout(r.timeout) });
    if (res.status === 304) return { kind: 'not-modified' };
    if (res.status === 404) return { kind: 'not-found' };
    if (!res.ok) return { kind: 'failed', reason: `backend answered ${res.status}` };
    const doc: unknown = await res.json();
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return { kind: 'failed', reason: 'not a package document' };
    const tarballs = new Map<string, string>();
    const tags = new Map<string, string>();
    for (const [tag, version] of ownEntries((doc as Record<string, unknown>)['dist-tags'])) if (typeof version === 'string') tags.set(tag, version);
    // The text is written piece by piece, as JSON.stringify(doc) would write
    // it, to know where each version's document is.
    const text = new TextPieces();
    const versions = new Map<string, readonly [number, number]>();
    text.add('{');
    ownEntries(doc).forEach(([key, value], i) => {
      text.add(`${i === 0 ? '' : ','}${JSON.stringify(key)}:`);
      if (key !== 'versions' || typeof value !== 'object' || value === null || Array.isArray(value)) return void text.add(JSON.stringify(value));
      text.add('{');
      ownEntries(value).forEach(([version, v], j) => {
        text.add(`${j === 0 ? '' : ','}${JSON.stringify(version)}:`);
        const dist = typeof v === 'object' && v !== null ? (v as VersionDoc).dist : undefined;
        if (typeof dist?.tarball === 'string') {
          const url = dist.tarball;
          const file = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
          // The gateway's redirect goes there, and a Location field is ASCII.
          tarballs.set(file, encodeNonPrintable(asciiHost(url)));
          dist.tarball = `${PLACEHOLDER}/${r.name}/-/${encodeNonPrintable(file)}`;
        }
        const start = text.length;
        text.add(JSON.stringify(v));
        if (typeof v === 'object' && v !== null) versions.set(version, [start, text.length]);
      });
      text.add('}');
    });
    text.add('}');
    return { kind: 'document', etag: res.headers.get('etag'), contentType: res.headers.get('content-type'), text: text.shared(), versions, tags, tarballs };
  } catch (e) {
    return { kind: 'failed', reason: withCause(e) };
  }
}

/** UTF-8 text written in pieces, its length in bytes known as it grows. */
class TextPieces {
  readonly #pieces: Buffer[] = [];
  length = 0;

  add(piece: string): void {
    const bytes = Buffer.from(piece);
    this.#pieces.push(bytes);
    this.length += bytes.length;
  }

  /** The whole text, in memory both threads can read. */
  shared(): Uint8Array {
    const text = new Uint8Array(new SharedArrayBuffer(this.length));
    let at = 0;
    for (const p of this.#pieces) {
      text.set(p, at);
      at += p.length;
    }
    return text;
  }
}

function ownEntries(o: unknown): [string, unknown][] {
  return typeof o === 'object' && o !== null ? Object.entries(o) : [];
}

const PLACEHOLDER_BYTES = Buffer.from(PLACEHOLDER);

function render(text: Uint8Array, origin: string): RenderedBytes {
  const template = Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  const originBytes = Buffer.from(origin);
  const pieces: Buffer[] = [];
  let at = 0;
  for (let i = template.indexOf(PLACEHOLDER_BYTES); i !== -1; i = template.indexOf(PLACEHOLDER_BYTES, at)) {
    pieces.push(template.subarray(at, i), originBytes);
    at = i + PLACEHOLDER_BYTES.length;
  }
  pieces.push(template.subarray(at));
  const body = Buffer.concat(pieces);
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`;
  const gzip = gzipVariant(body, etag);
  return { body: own(body), etag, gzip: gzip === null ? null : { body: own(gzip.body), etag: gzip.etag } };
}

/** `bytes` alone in its memory, which can then be handed over: a small Buffer shares node's pool. */
function own(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : new Uint8Array(bytes);
}

parentPort?.on('message', async ({ id, request }: { id: number; request: WorkerRequest }) => {
  try {
    if (request.kind === 'load') return parentPort!.postMessage({ id, result: await load(request) });
    const result = render(request.text, request.origin);
    const transfer = [result.body.buffer as ArrayBuffer];
    if (result.gzip !== null) transfer.push(result.gzip.body.buffer as ArrayBuffer);
    parentPort!.postMessage({ id, result }, transfer);
  } catch (e) {
    parentPort!.postMessage({ id, error: (e as Error).message });
  }
});
