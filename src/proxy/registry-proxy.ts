/**
 * The registry proxy (SPEC §4), on http-proxy-3. Stages, in order:
 *
 * 1. request headers: end-to-end ones pass (`Authorization`, `Accept`,
 *    `Range`, `If-None-Match`, ...); hop-by-hop ones, `Host` and
 *    `Accept-Encoding` are dropped; `X-Forwarded-For` is the client address.
 * 2. send (GET/HEAD, no body) to the backend, or to its `--upstream` URL,
 *    with connect and first-byte timeouts;
 * 3. backend redirect to a `/v2/` path: follow it here (at most 10 hops);
 *    any other redirect (signed blob storage) goes to the client with an
 *    absolute Location, so the storage host never sees our headers;
 * 4. backend 401 and the client sent no credentials: answer the challenge
 *    with gateway-held credentials (registry-auth.ts) and retry once;
 * 5. stream the answer with its status and end-to-end headers, never
 *    buffered, with backpressure; a client abort destroys the upstream
 *    request and frees its socket.
 *
 * Upstream failures become 502/504 with an OCI error body; nothing here
 * throws at the caller.
 */
import { Agent as HttpAgent, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, type ClientRequest } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createProxyServer } from 'http-proxy-3';
import type { Outcome } from '../analytics/capture.ts';
import type { ErrorCode } from '../errors.ts';
import { ERRORS } from '../errors.ts';
import { ociBody } from '../rules/docker-errors.ts';
import { parseChallenge, type RegistryAuth } from './registry-auth.ts';
import type { Upstreams } from './upstreams.ts';

export interface RegistryProxyOptions {
  /** Backend host → base URL overrides (`--upstream`). */
  readonly upstreams: Upstreams;
  /** Time to open a connection to the backend, in ms. */
  readonly connectTimeout: number;
  /** Time the backend may stay silent (first byte, and between chunks), in ms. */
  readonly firstByteTimeout: number;
  /** Gateway-held credentials, or null. */
  readonly auth: RegistryAuth | null;
  /** Called for each upstream failure (metrics). */
  readonly onUpstreamError?: (code: ErrorCode) => void;
}

/** RFC 9110 §7.6.1 hop-by-hop fields, plus those a proxy must not forward. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection'];
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_HOPS = 10;

class UpstreamError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, cause?: unknown) {
    super(ERRORS[code].message, { cause });
    this.code = code;
  }
}

function withoutHopByHop(headers: IncomingHttpHeaders, extra: readonly string[]): Record<string, string | string[]> {
  const drop = new Set([...HOP_BY_HOP, ...extra]);
  const connection = headers.connection;
  if (typeof connection === 'string') for (const name of connection.split(',')) drop.add(name.trim().toLowerCase());
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) if (value !== undefined && !drop.has(name)) out[name] = value;
  return out;
}

export class RegistryProxy {
  readonly #options: RegistryProxyOptions;
  readonly #proxy = createProxyServer({});
  readonly #agents = { http: new HttpAgent({ keepAlive: true }), https: new HttpsAgent({ keepAlive: true }) };
  /** The attempt in flight for each client request (one at a time). */
  readonly #attempts = new WeakMap<IncomingMessage, Attempt>();

  constructor(options: RegistryProxyOptions) {
    this.#options = options;
    this.#proxy.on('proxyReq', (proxyReq, req) => this.#attempts.get(req)?.started(proxyReq));
    this.#proxy.on('proxyRes', (proxyRes, req) => this.#attempts.get(req)?.answered(proxyRes));
    this.#proxy.on('econnreset', (_err, req) => this.#attempts.get(req)?.failed(new UpstreamError('UPSTREAM_UNREACHABLE')));
  }

  /** Forward one pull; resolves when the client's response is finished. */
  async forward(req: IncomingMessage, res: ServerResponse, registry: string, pathAndQuery: string, clientIp: string | null): Promise<{ status: number; outcome: Outcome }> {
    const headers = withoutHopByHop(req.headers, ['host', 'accept-encoding', 'content-length', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);
    if (clientIp !== null) headers['x-forwarded-for'] = clientIp;
    const clientAuth = headers.authorization !== undefined;
    const scope = pullScope(pathAndQuery);
    let url = new URL(this.#options.upstreams.resolve(registry) + pathAndQuery);
    let authorization = clientAuth ? undefined : this.#options.auth?.cached(registry, scope);
    let triedAuth = false;
    try {
      for (let hop = 0; ; hop++) {
        const upstream = await this.#send(req, res, url, headers, authorization);
        const status = upstream.statusCode ?? 502;
        const location = upstream.headers.location;
        if (REDIRECTS.has(status) && location !== undefined) {
          const next = new URL(location, url);
          if (next.pathname.startsWith('/v2/') && hop < MAX_HOPS) {
            upstream.resume();
            // Credentials stay with the origin they were meant for.
            if (next.origin !== url.origin) {
              delete headers.authorization;
              authorization = undefined;
            }
            url = new URL(this.#options.upstreams.resolveUrl(next));
            continue;
          }
          return await this.#relay(req, res, upstream, { location: next.href });
        }
        if (status === 401 && !clientAuth && !triedAuth && this.#options.auth?.has(registry)) {
          const challenge = parseChallenge(upstream.headers['www-authenticate'] as string | undefined);
          upstream.resume();
          triedAuth = true;
          const answer = challenge === null ? null : await this.#options.auth.answer(registry, challenge, (realm) => this.#options.upstreams.resolveUrl(new URL(realm)));
          if (answer !== null) {
            authorization = answer;
            continue;
          }
          // No token: resend without one so the client sees the challenge.
          authorization = undefined;
          continue;
        }
        return await this.#relay(req, res, upstream, null);
      }
    } catch (e) {
      const code = e instanceof UpstreamError ? e.code : 'UPSTREAM_UNREACHABLE';
      this.#options.onUpstreamError?.(code);
      const status = ERRORS[code].status;
      if (res.headersSent) res.destroy();
      else {
        const body = ociBody(code);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      }
      return { status, outcome: 'upstream-error' };
    }
  }

  /** One request to the backend through http-proxy-3; resolves with its response head. */
  #send(req: IncomingMessage, res: ServerResponse, url: URL, headers: Record<string, string | string[]>, authorization: string | undefined): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const attempt = new Attempt(resolve, reject);
      this.#attempts.set(req, attempt);
      req.headers = authorization === undefined ? { ...headers } : { ...headers, authorization };
      this.#proxy.web(
        req,
        res,
        {
          target: url.href,
          ignorePath: true,
          changeOrigin: true,
          selfHandleResponse: true,
          xfwd: false,
          agent: url.protocol === 'https:' ? this.#agents.https : this.#agents.http,
          connectTimeout: this.#options.connectTimeout,
          proxyTimeout: this.#options.firstByteTimeout,
          // GET and HEAD only: never a request body.
          buffer: Readable.from([]),
        },
        (err) => attempt.failed(err),
      );
    });
  }

  /** Writes the backend's answer to the client, streaming the body. */
  async #relay(req: IncomingMessage, res: ServerResponse, upstream: IncomingMessage, override: { location: string } | null): Promise<{ status: number; outcome: Outcome }> {
    const status = upstream.statusCode ?? 502;
    const headers = withoutHopByHop(upstream.headers, override === null ? [] : ['content-length']);
    if (override !== null) headers.location = override.location;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      upstream.resume();
      res.end();
      return { status, outcome: 'proxy' };
    }
    try {
      await pipeline(upstream, res);
    } catch {
      // The client went away or the backend broke off mid-stream: the
      // pipeline has destroyed both sides; the status stays as sent.
    }
    return { status, outcome: 'proxy' };
  }

  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }
}

/** `repository:<name>:pull` for a Distribution API path, '' for others. */
function pullScope(pathAndQuery: string): string {
  const m = /^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//.exec(pathAndQuery);
  return m === null ? '' : `repository:${m[1]}:pull`;
}

/** One request to the backend: its timeout bookkeeping and outcome. */
class Attempt {
  #settled = false;
  #timedOut = false;
  readonly #resolve: (res: IncomingMessage) => void;
  readonly #reject: (e: UpstreamError) => void;

  constructor(resolve: (res: IncomingMessage) => void, reject: (e: UpstreamError) => void) {
    this.#resolve = resolve;
    this.#reject = reject;
  }

  /** http-proxy-3 destroys the request on `proxyTimeout`; remember why. */
  started(proxyReq: ClientRequest): void {
    proxyReq.once('timeout', () => {
      this.#timedOut = true;
    });
  }

  answered(res: IncomingMessage): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#resolve(res);
  }

  failed(err: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const timeout = this.#timedOut || code === 'ECONNECT_TIMEOUT' || code === 'ETIMEDOUT';
    this.#reject(err instanceof UpstreamError ? err : new UpstreamError(timeout ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNREACHABLE', err));
  }
}
