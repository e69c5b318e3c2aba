/**
 * Package documents of npm-v1 rules, fetched from the backend registry and
 * kept in lru-cache (SPEC §8a). Within the TTL a cached document is served
 * as it is; after it, the backend is asked again with its ETag (a 304 keeps
 * the copy). A backend failure serves the stale copy when there is one.
 * Concurrent misses for one document share one fetch.
 *
 * Tarball URLs are rewritten once, to a placeholder origin; serving a
 * document only replaces the placeholder with the origin of the request.
 */
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { gzipVariant, type Gzipped } from '../http/content-coding.ts';
import type { Upstreams } from '../proxy/upstreams.ts';
import type { NpmTarget } from './npm.ts';

const PLACEHOLDER = 'https://gateway-origin.invalid';
const ABBREVIATED = 'application/vnd.npm.install-v1+json';

export interface Rendered {
  /** A Buffer, shared by every answer that sends it: writing it copies nothing. */
  readonly body: Buffer;
  readonly etag: string;
  readonly contentType: string;
  /** The gzip variant of a document over 8 KiB, made with it. */
  readonly gzip: Gzipped | null;
}


interface VersionDoc {
  dist?: { tarball?: string };
}

export class Packument {
  /** Tarball file name → the backend's URL for it. */
  readonly tarballs = new Map<string, string>();
  readonly #template: string;
  readonly #versions: Record<string, VersionDoc>;
  readonly #tags: Record<string, string>;
  readonly #contentType: string;
  readonly #rendered = new LRUCache<string, Rendered>({ max: 16 });

  constructor(target: NpmTarget, doc: { versions?: Record<string, VersionDoc>; 'dist-tags'?: Record<string, string> }, contentType: string) {
    this.#versions = doc.versions ?? {};
    this.#tags = doc['dist-tags'] ?? {};
    for (const v of Object.values(this.#versions)) {
      const url = v?.dist?.tarball;
      if (typeof url !== 'string') continue;
      const file = decodeURIComponent(new URL(url).pathname.split('/').pop() ?? '');
      this.tarballs.set(file, url);
      v.dist!.tarball = `${PLACEHOLDER}/${target.name}/-/${file}`;
    }
    this.#template = JSON.stringify(doc);
    this.#contentType = contentType;
  }

  #finish(key: string, template: string, origin: string, contentType: string): Rendered {
    let r = this.#rendered.get(key);
    if (r === undefined) {
      const body = Buffer.from(template.replaceAll(PLACEHOLDER, origin));
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`;
      r = { body, etag, contentType, gzip: gzipVariant(body, etag) };
      this.#rendered.set(key, r);
    }
    return r;
  }

  /** The whole document, tarballs pointing at `origin`. */
  render(origin: string): Rendered {
    return this.#finish(origin, this.#template, origin, this.#contentType);
  }

  /** One version (or dist-tag) document, or null when there is none. */
  renderVersion(versionOrTag: string, origin: string): Rendered | null {
    // Own keys only: `constructor` or `__proto__` is no version.
    const version = Object.hasOwn(this.#versions, versionOrTag) ? versionOrTag : Object.hasOwn(this.#tags, versionOrTag) ? this.#tags[versionOrTag] : undefined;
    const doc = typeof version === 'string' && Object.hasOwn(this.#versions, version) ? this.#versions[version] : undefined;
    if (typeof doc !== 'object' || doc === null) return null;
    return this.#finish(`${origin} ${version}`, JSON.stringify(doc), origin, 'application/json');
  }
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
  readonly onUpstreamError?: () => void;
}

export class NpmDocuments {
  readonly #options: NpmDocumentsOptions;
  readonly #cache = new LRUCache<string, Entry>({ max: 1000 });
  readonly #inflight = new Map<string, Promise<Packument | 'not-found' | null>>();

  constructor(options: NpmDocumentsOptions) {
    this.#options = options;
  }

  /** The document, 'not-found' when the backend has none, null when it failed and nothing is cached. */
  packument(target: NpmTarget, abbreviated: boolean): Promise<Packument | 'not-found' | null> {
    const key = `${abbreviated ? 'a' : 'f'} ${target.documentUrl}`;
    const entry = this.#cache.get(key);
    if (entry !== undefined && Date.now() - entry.fetchedAt < this.#options.ttl) return Promise.resolve(entry.doc);
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
    try {
      const res = await fetch(this.#options.upstreams.resolveUrl(new URL(target.documentUrl)), {
        headers,
        signal: AbortSignal.timeout(this.#options.timeout),
      });
      if (res.status === 304 && entry !== undefined) {
        entry.fetchedAt = Date.now();
        return entry.doc;
      }
      if (res.status === 404) return 'not-found';
      if (!res.ok) throw new Error(`backend answered ${res.status}`);
      const contentType = (res.headers.get('content-type') ?? '').startsWith(ABBREVIATED) ? ABBREVIATED : 'application/json';
      const doc = new Packument(target, (await res.json()) as ConstructorParameters<typeof Packument>[1], contentType);
      this.#cache.set(key, { doc, etag: res.headers.get('etag'), fetchedAt: Date.now() });
      return doc;
    } catch {
      this.#options.onUpstreamError?.();
      return entry?.doc ?? null;
    }
  }
}
