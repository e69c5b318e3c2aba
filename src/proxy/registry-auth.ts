/**
 * Gateway-held registry credentials (SPEC §4): read from the `auths`
 * section of a Docker `config.json`. When a proxied request carries no
 * `Authorization`, the gateway answers the backend's challenge itself:
 * `Basic` with the stored credentials, or `Bearer` by fetching a token from
 * the challenge's realm (Docker token authentication:
 * https://distribution.github.io/distribution/spec/auth/token/).
 * Tokens are cached per registry and scope until they expire (lru-cache,
 * bounded) and never reach the client. Requests that need the same token
 * while it is being fetched share one fetch; a request whose client leaves
 * stops waiting for it at once, and the fetch goes on (bounded by its
 * deadline) so that the next request finds the token cached.
 */
import { readFileSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { normalizeRegistry } from '../rules/docker.ts';
import { BackendError, ClientLeft, withCause } from './backend-error.ts';

/** A parsed `WWW-Authenticate` challenge (RFC 9110 §11.6.1). */
export interface Challenge {
  readonly scheme: string;
  readonly params: Readonly<Record<string, string>>;
}

export function parseChallenge(header: string | undefined): Challenge | null {
  if (header === undefined) return null;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(header);
  if (m === null) return null;
  const params: Record<string, string> = {};
  for (const p of m[2].matchAll(/([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  }
  return { scheme: m[1].toLowerCase(), params };
}

export interface TokenCacheStats {
  hits: number;
  misses: number;
}

/** Reads credentials; throws with a clear message on a bad file. */
export function readCredentials(file: string): Map<string, string> {
  let json: { auths?: unknown } | null | undefined;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--registry-auth ${file}: ${(e as Error).message}`);
  }
  const auths: unknown = typeof json === 'object' && json !== null ? (json.auths ?? {}) : null;
  if (typeof auths !== 'object' || auths === null || Array.isArray(auths)) throw new Error(`--registry-auth ${file}: not a Docker config.json, whose "auths" is an object`);
  const creds = new Map<string, string>();
  for (const [key, entry] of Object.entries(auths)) {
    // Keys are host names or URLs (Docker Hub: https://index.docker.io/v1/).
    const host = normalizeRegistry(key.replace(/^https?:\/\//, '').replace(/\/.*$/, ''));
    const where = `--registry-auth ${file}: auths["${key}"]`;
    // `az acr login` writes one, with an "auth" docker does not use then: its user:password would be refused at pull time.
    if (typeof entry?.identitytoken === 'string' && entry.identitytoken !== '') {
      throw new Error(`${where} has an "identitytoken", a refresh token that docker trades at the registry's token service and that expires within hours; the gateway does not read it: give a username and password that last (a registry token or a service principal)`);
    }
    if (typeof entry?.auth === 'string') {
      // As docker reads it: base64 of user:password.
      const decoded = Buffer.from(entry.auth, 'base64');
      // Node skips what is not base64: encoded again, it is the same text, padded.
      const padded = decoded.toString('base64');
      if (padded.replace(/=+$/, '') !== entry.auth.replace(/=+$/, '') || !decoded.includes(':')) {
        throw new Error(`${where}.auth is not the base64 of user:password`);
      }
      creds.set(host, padded);
    } else if (typeof entry?.username === 'string') {
      creds.set(host, Buffer.from(`${entry.username}:${typeof entry.password === 'string' ? entry.password : ''}`).toString('base64'));
    } else {
      // A credentials store or helper keeps them elsewhere, which the gateway does not ask.
      throw new Error(`${where} has neither "auth" nor "username" (credsStore and credHelpers are not read)`);
    }
  }
  return creds;
}

interface Token {
  readonly token: string;
  readonly expiresIn: number;
}

/** Fetches a token from `url` with Basic credentials; when the realm gives none, why. `signal` ends the fetch. */
export type TokenFetcher = (url: string, basic: string, signal: AbortSignal) => Promise<Token | string>;

export interface RegistryAuthOptions {
  /** The whole token exchange's deadline, in ms: past it the request fails as an upstream timeout. */
  readonly timeout: number;
  readonly maxTokens?: number;
  /** Called when a realm gives no token for the gateway's credentials (the client then gets the registry's challenge): the realm's origin, and why. */
  readonly onRefused?: (realm: string, reason: string) => void;
}

export class RegistryAuth {
  #creds: ReadonlyMap<string, string>;
  readonly #tokens: LRUCache<string, string>;
  readonly #fetchToken: TokenFetcher;
  readonly #timeout: number;
  readonly #onRefused: (realm: string, reason: string) => void;
  /** Token fetches in flight, by realm URL (service and scope included) and registry. */
  readonly #inflight = new Map<string, Promise<Token | null>>();
  readonly stats: TokenCacheStats = { hits: 0, misses: 0 };

  constructor(creds: ReadonlyMap<string, string>, fetchToken: TokenFetcher, options: RegistryAuthOptions) {
    this.#creds = creds;
    this.#fetchToken = fetchToken;
    this.#timeout = options.timeout;
    this.#onRefused = options.onRefused ?? (() => undefined);
    this.#tokens = new LRUCache<string, string>({ max: options.maxTokens ?? 1000, ttlAutopurge: false });
  }

  /** New credentials (the file read again): tokens got with the old ones are dropped. */
  replaceCredentials(creds: ReadonlyMap<string, string>): void {
    this.#creds = creds;
    this.#tokens.clear();
  }

  has(registry: string): boolean {
    return this.#creds.has(registry);
  }

  /** A cached `Authorization` value for this registry and scope, if any. */
  cached(registry: string, scope: string): string | undefined {
    if (!this.#creds.has(registry)) return undefined;
    const token = this.#tokens.get(tokenKey(registry, scope));
    if (token === undefined) {
      this.stats.misses++;
      return undefined;
    }
    this.stats.hits++;
    return `Bearer ${token}`;
  }

  /**
   * Answers a challenge; resolves with an `Authorization` value, or null.
   * Rejects with ClientLeft when `left` aborts first, and with a
   * BackendError when the realm cannot be reached or misses the deadline.
   */
  async answer(registry: string, challenge: Challenge, realmUrl: (realm: string) => string, left: AbortSignal): Promise<string | null> {
    const basic = this.#creds.get(registry);
    if (basic === undefined) return null;
    if (challenge.scheme === 'basic') return `Basic ${basic}`;
    if (challenge.scheme !== 'bearer' || challenge.params.realm === undefined) return null;
    const url = new URL(realmUrl(challenge.params.realm));
    if (challenge.params.service !== undefined) url.searchParams.set('service', challenge.params.service);
    if (challenge.params.scope !== undefined) url.searchParams.set('scope', challenge.params.scope);
    const key = `${registry} ${url.href}`;
    let pending = this.#inflight.get(key);
    if (pending === undefined) {
      pending = this.#fetch(url.href, basic, tokenKey(registry, challenge.params.scope ?? '')).finally(() => this.#inflight.delete(key));
      // Its waiters may all have left: a failure nobody waits for is not an unhandled rejection.
      pending.catch(() => undefined);
      this.#inflight.set(key, pending);
    }
    const got = await untilLeft(pending, left);
    return got === null ? null : `Bearer ${got.token}`;
  }

  /** One fetch, to its deadline; the token is cached under `cacheKey`. */
  async #fetch(url: string, basic: string, cacheKey: string): Promise<Token | null> {
    let got: Token | string;
    try {
      got = await this.#fetchToken(url, basic, AbortSignal.timeout(this.#timeout));
    } catch (e) {
      const timedOut = e instanceof DOMException && e.name === 'TimeoutError';
      throw new BackendError(timedOut ? 'timeout' : 'unreachable', `token realm ${new URL(url).origin}: ${timedOut ? 'no answer in time' : withCause(e)}`, e);
    }
    if (typeof got === 'string') {
      this.#onRefused(new URL(url).origin, got);
      return null;
    }
    // Expire a little early so a token is never used as it runs out.
    this.#tokens.set(cacheKey, got.token, { ttl: Math.max(1, got.expiresIn - 5) * 1000 });
    return got;
  }
}

/** Where a token for `scope` on `registry` is cached. */
function tokenKey(registry: string, scope: string): string {
  return `${registry} ${scope}`;
}

/** `pending`, unless `left` aborts first: then ClientLeft. */
function untilLeft<T>(pending: Promise<T>, left: AbortSignal): Promise<T> {
  if (left.aborted) return Promise.reject(new ClientLeft());
  return new Promise((resolve, reject) => {
    const onLeft = () => reject(new ClientLeft());
    left.addEventListener('abort', onLeft, { once: true });
    pending.then(resolve, reject).finally(() => left.removeEventListener('abort', onLeft));
  });
}

/** Token endpoint client (GET realm with Basic credentials). */
export const fetchRegistryToken: TokenFetcher = async (url, basic, signal) => {
  const res = await fetch(url, { headers: { authorization: `Basic ${basic}` }, signal });
  if (!res.ok) return `the token realm answered ${res.status} to the gateway's credentials`;
  const body = (await res.json()) as { token?: string; access_token?: string; expires_in?: number };
  const token = body.token ?? body.access_token;
  if (token === undefined) return 'the token realm answered without a token';
  // The spec's default lifetime is 60 seconds.
  return { token, expiresIn: body.expires_in ?? 60 };
};
