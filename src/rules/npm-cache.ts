/**
 * Package documents of npm-v1 rules, fetched from the backend registry and
 * kept in lru-cache (SPEC §8a). Within the TTL a cached document is served
 * as it is; after it, the backend is asked again with its ETag (a 304 keeps
 * the copy). A backend failure serves the stale copy when there is one.
 * Concurrent misses for one document share one fetch.
 *
 * Fetching, parsing, rewriting and rendering happen in a worker thread
 * (npm-worker.ts); this side keeps the results and hands them to requests.
 */
import { Worker } from 'node:worker_threads';
import { LRUCache } from 'lru-cache';
import type { Gzipped } from '../http/content-coding.ts';
import type { Upstreams } from '../proxy/upstreams.ts';
import type { NpmTarget } from './npm.ts';
import type { LoadedDocument, LoadResult, RenderedBytes, WorkerRequest } from './npm-worker.ts';

/** The abbreviated package document's media type (npm's `install-v1`). */
export const ABBREVIATED = 'application/vnd.npm.install-v1+json';

export interface Rendered {
  /** A Buffer, shared by every answer that sends it: writing it copies nothing. */
  readonly body: Buffer;
  readonly etag: string;
  readonly contentType: string;
  /** The gzip variant of a document over 8 KiB, made with it. */
  readonly gzip: Gzipped | null;
}

/**
 * The worker thread, started at the first document and started again after
 * a failure, which fails the messages it had. It keeps the process alive
 * only while it has messages.
 */
export class DocumentWorker {
  readonly #script: URL;
  #worker: Worker | null = null;
  #next = 0;
  readonly #pending = new Map<number, { resolve(result: unknown): void; reject(e: Error): void }>();

  /** `script`: npm-worker.ts, or a stand-in in tests. */
  constructor(script = new URL('./npm-worker.ts', import.meta.url)) {
    this.#script = script;
  }

  load(request: Extract<WorkerRequest, { kind: 'load' }>): Promise<LoadResult> {
    return this.#call(request) as Promise<LoadResult>;
  }

  async render(text: Uint8Array, origin: string, contentType: string): Promise<Rendered> {
    const r = (await this.#call({ kind: 'render', text, origin })) as RenderedBytes;
    const gzip = r.gzip === null ? null : { body: bytes(r.gzip.body), contentLength: String(r.gzip.body.length), etag: r.gzip.etag };
    return { body: bytes(r.body), etag: r.etag, contentType, gzip };
  }

  #call(request: WorkerRequest): Promise<unknown> {
    const worker = this.#worker ?? this.#start();
    const id = this.#next++;
    if (this.#pending.size === 0) worker.ref();
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      worker.postMessage({ id, request });
    });
  }

  #start(): Worker {
    const worker = new Worker(this.#script);
    worker.on('message', ({ id, result, error }: { id: number; result?: unknown; error?: string }) => {
      const call = this.#pending.get(id);
      this.#pending.delete(id);
      if (this.#pending.size === 0) worker.unref();
      if (error === undefined) call?.resolve(result);
      else call?.reject(new Error(error));
    });
    const fail = (e: Error) => {
      if (this.#worker !== worker) return;
      this.#worker = null;
      for (const call of this.#pending.values()) call.reject(e);
      this.#pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the npm document worker exited (${code})`)));
    return (this.#worker = worker);
  }
}

/** A Buffer over the memory the worker handed over, without a copy. */
function bytes(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** Bytes a rendering holds. */
const sizeOf = (r: Rendered): number => r.body.length + (r.gzip?.body.length ?? 0);

export class Packument {
  readonly #doc: LoadedDocument;
  readonly #contentType: string;
  readonly #worker: DocumentWorker;
  readonly #onResize: () => void;
  /** The text's bytes and those of the renderings kept. */
  #bytes: number;
  /** Renderings per origin (and version), shared by concurrent requests while they are made. */
  readonly #rendered = new LRUCache<string, Promise<Rendered>>({
    max: 16,
    // A rendering that goes gives its bytes back once it is made (added first, then taken away).
    dispose: (made) => void made.then((r) => this.#grow(-sizeOf(r)), () => undefined),
  });

  /** `onResize` is told when the bytes held change. */
  constructor(doc: LoadedDocument, worker: DocumentWorker, onResize: () => void = () => undefined) {
    this.#doc = doc;
    this.#contentType = doc.contentType?.startsWith(ABBREVIATED) ? ABBREVIATED : 'application/json';
    this.#worker = worker;
    this.#onResize = onResize;
    this.#bytes = doc.text.byteLength;
  }

  /** Bytes held: the document's text and the renderings kept. */
  get bytes(): number {
    return this.#bytes;
  }

  #grow(bytes: number): void {
    this.#bytes += bytes;
    this.#onResize();
  }

  /** Tarball file name → the backend's URL for it. */
  get tarballs(): ReadonlyMap<string, string> {
    return this.#doc.tarballs;
  }

  /** The dist-tags as JSON: `{"latest":"1.2.0",...}`. */
  distTags(): string {
    return JSON.stringify(Object.fromEntries(this.#doc.tags));
  }

  #finish(key: string, text: Uint8Array, origin: string, contentType: string): Promise<Rendered> {
    let r = this.#rendered.get(key);
    if (r === undefined) {
      const made = this.#worker.render(text, origin, contentType);
      made.then(
        (rendered) => this.#grow(sizeOf(rendered)),
        () => this.#rendered.get(key) === made && this.#rendered.delete(key),
      );
      this.#rendered.set(key, (r = made));
    }
    return r;
  }

  /** The whole document, tarballs pointing at `origin`. */
  render(origin: string): Promise<Rendered> {
    return this.#finish(origin, this.#doc.text, origin, this.#contentType);
  }

  /** One version (or dist-tag) document, or null when there is none. */
  renderVersion(versionOrTag: string, origin: string): Promise<Rendered> | null {
    const version = this.#doc.versions.has(versionOrTag) ? versionOrTag : this.#doc.tags.get(versionOrTag);
    const at = version === undefined ? undefined : this.#doc.versions.get(version);
    if (at === undefined) return null;
    return this.#finish(`${origin} ${version}`, this.#doc.text.subarray(at[0], at[1]), origin, 'application/json');
  }
}

/** The cache keys of a document: the full and the abbreviated form are cached apart. */
export function documentKeys(documentUrl: string): NpmTarget['cacheKeys'] {
  return { full: `f ${documentUrl}`, abbreviated: `a ${documentUrl}` };
}

interface Entry {
  doc: Packument;
  etag: string | null;
  fetchedAt: number;
}

export interface NpmDocumentsOptions {
  readonly upstreams: Upstreams;
  /** How long a fetched document is served without asking the backend, in ms. */
  readonly ttl: number;
  /** Time allowed for a backend fetch, in ms. */
  readonly timeout: number;
  /** Bytes the cached documents, their text and renderings, may hold (`--npm-cache-memory`). */
  readonly maxBytes: number;
  /** Called for each failed fetch of a document (metrics, the operations log): the origin asked and why it failed. */
  readonly onUpstreamError?: (backend: string, reason: string) => void;
}

export class NpmDocuments {
  readonly #options: NpmDocumentsOptions;
  /**
   * At most 1,000 documents, within the byte budget: the least recently
   * used go first. One larger than the whole budget is served, not kept.
   */
  readonly #cache: LRUCache<string, Entry>;
  readonly #inflight = new Map<string, Promise<Packument | 'not-found' | null>>();
  readonly #worker = new DocumentWorker();

  constructor(options: NpmDocumentsOptions) {
    this.#options = options;
    // A document's text is never empty, so no size is 0 (which lru-cache refuses).
    this.#cache = new LRUCache<string, Entry>({ max: 1000, maxSize: options.maxBytes, sizeCalculation: (e) => e.doc.bytes });
  }

  /** Bytes the cached documents hold. */
  get bytes(): number {
    return this.#cache.calculatedSize;
  }

  /** A cached document's size changed (a rendering was made or dropped): the cache measures it again. */
  #resized(key: string, entry: Entry): void {
    if (this.#cache.peek(key) !== entry) return;
    // lru-cache keeps the size it has for a key set again to the same value: taken out first, it is measured anew.
    this.#cache.delete(key);
    this.#cache.set(key, entry);
  }

  #isFresh(entry: Entry | undefined): entry is Entry {
    return entry !== undefined && Date.now() - entry.fetchedAt < this.#options.ttl;
  }

  /** Hot path. The full document when it is cached and within the TTL: tarball redirects need no more. */
  fresh(target: NpmTarget): Packument | undefined {
    const entry = this.#cache.get(target.cacheKeys.full);
    return this.#isFresh(entry) ? entry.doc : undefined;
  }

  /** The document, 'not-found' when the backend has none, null when it failed and nothing is cached. */
  packument(target: NpmTarget, abbreviated: boolean): Promise<Packument | 'not-found' | null> {
    const key = abbreviated ? target.cacheKeys.abbreviated : target.cacheKeys.full;
    const entry = this.#cache.get(key);
    if (this.#isFresh(entry)) return Promise.resolve(entry.doc);
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = this.#fetch(key, target, abbreviated, entry).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  async #fetch(key: string, target: NpmTarget, abbreviated: boolean, entry: Entry | undefined): Promise<Packument | 'not-found' | null> {
    const headers: Record<string, string> = {
      accept: abbreviated ? `${ABBREVIATED}; q=1.0, application/json; q=0.8, */*` : 'application/json',
    };
    if (entry?.etag) headers['if-none-match'] = entry.etag;
    const url = this.#options.upstreams.resolveUrl(new URL(target.documentUrl));
    const result = await this.#worker.load({ kind: 'load', url, name: target.name, headers, timeout: this.#options.timeout }).catch((): LoadResult => ({ kind: 'failed', reason: 'worker' }));
    if (result.kind === 'not-modified' && entry !== undefined) {
      entry.fetchedAt = Date.now();
      return entry.doc;
    }
    if (result.kind === 'not-found') return 'not-found';
    if (result.kind === 'document') {
      const doc = new Packument(result, this.#worker, () => this.#resized(key, fetched));
      const fetched: Entry = { doc, etag: result.etag, fetchedAt: Date.now() };
      this.#cache.set(key, fetched);
      return doc;
    }
    // A 304 without a cached document to revalidate: the backend answered what was not asked.
    this.#options.onUpstreamError?.(new URL(url).origin, result.kind === 'failed' ? result.reason : 'backend answered 304 to an unconditional request');
    return entry?.doc ?? null;
  }
}
