/**
 * The registry proxy (SPEC §4). Stages, in order:
 *
 * 1. request headers: end-to-end ones pass (`Authorization`, `Accept`,
 *    `Range`, `If-None-Match`, ...); hop-by-hop ones, `Host` and
 *    `Accept-Encoding` are dropped; `X-Forwarded-For` is the client address.
 * 2. send (GET/HEAD, no body) to the backend, or to its `--upstream` URL,
 *    with connect and silence timeouts (backend-client.ts);
 * 3. backend redirect to a `/v2/` path: follow it here (at most 10 hops);
 *    any other redirect (signed blob storage) goes to the client with an
 *    absolute Location, so the storage host never sees our headers;
 * 4. backend 401 and the client sent no credentials: answer the challenge
 *    with gateway-held credentials (registry-auth.ts) and retry once; the
 *    token realm is an upstream too (its failures give 502/504, a client
 *    leaving while it answers gives 499);
 * 5. stream the answer with its status and end-to-end headers, never
 *    buffered, with backpressure; a client abort closes the backend
 *    connection, also while its answer has not begun (analytics status 499,
 *    nginx's "client closed request": nothing was sent).
 *
 * Upstream failures become 502/504 with an OCI error body; nothing here
 * throws at the caller.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Outcome } from '../analytics/capture.ts';
import type { ErrorCode } from '../errors.ts';
import { ERRORS } from '../errors.ts';
import { cutOff } from '../http/send-slices.ts';
import { ociBody } from '../rules/docker-errors.ts';
import { BackendClient, BackendError, ClientLeft, type BackendAnswer, type ReadBudget } from './backend-client.ts';
import { parseChallenge, type RegistryAuth } from './registry-auth.ts';
import type { Upstreams } from './upstreams.ts';

export interface RegistryProxyOptions {
  /** Backend host → base URL overrides (`--upstream`). */
  readonly upstreams: Upstreams;
  /** Time to open a connection to the backend, in ms. */
  readonly connectTimeout: number;
  /** Time the backend may stay silent (first byte, and between chunks), in ms. */
  readonly firstByteTimeout: number;
  /** Time a write of a body may wait for the client, in ms (`--send-timeout`). */
  readonly sendTimeout: number;
  /** Called when a client is cut off for it (metrics). */
  readonly onSendTimeout?: () => void;
  /** Where the backend connections' read buffers come from (`--proxy-buffer-memory`). */
  readonly readBudget: ReadBudget;
  /** Gateway-held credentials, or null. */
  readonly auth: RegistryAuth | null;
  /** Called for each upstream failure (metrics, the operations log): the answer's code, the origin asked and why it failed. */
  readonly onUpstreamError?: (code: ErrorCode, backend: string, reason: string) => void;
  /** Called when a registry answers 401 to the gateway's own credentials or token (the operations log); the client gets that 401. */
  readonly onCredentialsRefused?: (backend: string) => void;
}

/** RFC 9110 §7.6.1 hop-by-hop fields, plus those a proxy must not forward. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-connection'];
/** Fields not passed on, made once: of a request (the gateway sets some itself), of an answer, of a redirect given a new Location. */
const REQUEST_DROP: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'host', 'accept-encoding', 'content-length', 'authorization', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);
const ANSWER_DROP: ReadonlySet<string> = new Set(HOP_BY_HOP);
const RELOCATED_DROP: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length', 'location']);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_HOPS = 10;
/** The analytics status of a request whose client left before the backend answered (nginx's "client closed request"). */
const CLIENT_LEFT = 499;

/** Fields (name, value, name, value, ...) without those in `dropped` and those `Connection` names; names in lower case. */
function endToEnd(fields: readonly string[], dropped: ReadonlySet<string>): string[] {
  let drop = dropped;
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i].toLowerCase() !== 'connection') continue;
    const more = new Set(drop);
    for (const name of fields[i + 1].split(',')) more.add(name.trim().toLowerCase());
    drop = more;
  }
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i].toLowerCase();
    if (!drop.has(name)) out.push(name, fields[i + 1]);
  }
  return out;
}

/** The error code of a backend's failure (or of anything else thrown on the way, which counts as unreachable). */
function codeOf(e: unknown): ErrorCode {
  return e instanceof BackendError && e.failure === 'timeout' ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNREACHABLE';
}

export class RegistryProxy {
  readonly #options: RegistryProxyOptions;
  readonly #client: BackendClient;

  constructor(options: RegistryProxyOptions) {
    this.#options = options;
    this.#client = new BackendClient({
      connectTimeout: options.connectTimeout,
      silenceTimeout: options.firstByteTimeout,
      sendTimeout: options.sendTimeout,
      onSendTimeout: options.onSendTimeout,
      readBudget: options.readBudget,
    });
  }

  /** Forward one pull of `image` ('' for the version check); resolves when the client's response is finished. */
  async forward(req: IncomingMessage, res: ServerResponse, registry: string, image: string, pathAndQuery: string, clientIp: string | null): Promise<{ status: number; outcome: Outcome }> {
    const fields = endToEnd(req.rawHeaders, REQUEST_DROP);
    if (clientIp !== null) fields.push('x-forwarded-for', clientIp);
    const method = req.method === 'HEAD' ? 'HEAD' : 'GET';
    const clientAuth = req.headers.authorization;
    const scope = image === '' ? '' : `repository:${image}:pull`;
    let url = new URL(this.#options.upstreams.resolve(registry) + pathAndQuery);
    // Gateway-held credentials answer the registry's challenges only, not those of an origin it redirects to.
    const home = url.origin;
    let authorization = clientAuth ?? this.#options.auth?.cached(registry, scope);
    let triedAuth = false;
    const left = new AbortController();
    // Not on every close: dispatching the abort event costs, and a finished response needs none.
    res.once('close', () => {
      if (!res.writableFinished) left.abort();
    });
    try {
      for (let hop = 0; ; hop++) {
        const upstream = await this.#client.request(url, method, authorization === undefined ? fields : [...fields, 'authorization', authorization], left.signal);
        try {
          const status = upstream.status;
          const location = upstream.field('location');
          if (REDIRECTS.has(status) && location !== undefined) {
            const next = new URL(location, url);
            if (next.pathname.startsWith('/v2/') && hop < MAX_HOPS) {
              upstream.discard();
              // Credentials stay with the origin they were meant for.
              if (next.origin !== url.origin) authorization = undefined;
              url = new URL(this.#options.upstreams.resolveUrl(next));
              continue;
            }
            return await this.#relay(res, upstream, url, next.href);
          }
          if (status === 401 && clientAuth === undefined && !triedAuth && url.origin === home && this.#options.auth?.has(registry)) {
            const challenge = parseChallenge(upstream.field('www-authenticate'));
            upstream.discard();
            triedAuth = true;
            // No token: resend without one, so that the client sees the challenge.
            const answered = challenge === null ? null : await this.#options.auth.answer(registry, challenge, (realm) => this.#options.upstreams.resolveUrl(new URL(realm)), left.signal);
            authorization = answered ?? undefined;
            continue;
          }
          if (status === 401 && triedAuth && authorization !== undefined) this.#options.onCredentialsRefused?.(url.origin);
          return await this.#relay(res, upstream, url, null);
        } finally {
          // Whatever went wrong on the way, the connection is not left waiting.
          upstream.discard();
        }
      }
    } catch (e) {
      if (e instanceof ClientLeft) return { status: CLIENT_LEFT, outcome: 'proxy' };
      // The backend's or the token realm's failure; anything else thrown on the way counts as unreachable.
      const code = codeOf(e);
      this.#options.onUpstreamError?.(code, url.origin, (e as Error).message);
      const status = ERRORS[code].status;
      if (res.headersSent) cutOff(res);
      else {
        const body = ociBody(code);
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(method === 'HEAD' ? undefined : body);
      }
      return { status, outcome: 'upstream-error' };
    }
  }

  /**
   * Writes the answer of the backend at `url` to the client, streaming the
   * body; `location` replaces the backend's.
   */
  async #relay(res: ServerResponse, upstream: BackendAnswer, url: URL, location: string | null): Promise<{ status: number; outcome: Outcome }> {
    const status = upstream.status;
    const fields = endToEnd(upstream.fields, location === null ? ANSWER_DROP : RELOCATED_DROP);
    if (location !== null) fields.push('location', location);
    res.writeHead(status, fields);
    // A body the backend cut off destroys the client's response; the status stays as sent, and the failure is counted.
    const failure = await upstream.pipeTo(res);
    if (failure !== null) this.#options.onUpstreamError?.(codeOf(failure), url.origin, `the body broke off: ${failure.message}`);
    return { status, outcome: 'proxy' };
  }

  close(): void {
    this.#client.close();
  }
}

