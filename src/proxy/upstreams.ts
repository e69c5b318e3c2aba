/**
 * `--upstream HOST=URL` (SPEC §4): proxied traffic meant for backend HOST
 * goes to URL instead (an internal mirror, a cache, a test double).
 * Redirect targets given to clients are never rewritten by it.
 */

export class Upstreams {
  readonly #map: ReadonlyMap<string, string>;

  /** `map`: host (optionally host:port, lower case) → base URL without trailing slash. */
  constructor(map: ReadonlyMap<string, string>) {
    this.#map = map;
  }

  /** Base URL for a backend host, e.g. `https://ghcr.io`. */
  resolve(host: string): string {
    return this.#map.get(host) ?? `https://${host}`;
  }

  /** The URL to actually fetch for an absolute backend URL. */
  resolveUrl(url: URL): string {
    const base = this.#map.get(url.host) ?? this.#map.get(url.hostname);
    return base === undefined ? url.href : base + url.pathname + url.search;
  }
}
