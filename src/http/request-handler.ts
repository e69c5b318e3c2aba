/**
 * The public listener's request handler: resolve host and client, look the
 * request up in the current routing table, carry out the answer, write the
 * analytics line(s).
 *
 * Hot path. A redirect costs: one split of the URL, one Map lookup for the
 * domain, one trie walk, one template expansion, one writeHead and one log
 * line. Everything else (templates, regexes, pages) was compiled when the
 * manifest was loaded. The table is read once per request, so a reload that
 * swaps it in while the request runs does not affect it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { clientIp, lineIp } from '../analytics/client-ip.ts';
import type { AnalyticsLog } from '../analytics/analytics-log.ts';
import type { Capture, Outcome } from '../analytics/capture.ts';
import { requestId } from '../analytics/request-id.ts';
import type { ErrorCode } from '../errors.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import { notFound, route, type RouteServices } from '../routing/route.ts';
import { isDockerPath, ociError } from '../rules/docker-errors.ts';
import { errorAnswer, type Answer } from './answer.ts';
import { BODY_CODINGS, hasBody, readEvents, type BodyLimits } from './body-events.ts';
import { cutOff, endInSlices } from './send-slices.ts';
import { absoluteForm, hostFieldLines, requestHost } from './request-host.ts';
import type { TrustedProxies } from './trusted-proxies.ts';

/** What the handler reads on every request; `table` is replaced on reload. */
export interface HandlerState {
  table: RoutingTable | null;
}

export interface HandlerConfig {
  readonly trusted: TrustedProxies;
  readonly anonymizeIp: boolean;
  readonly maxUrlLength: number;
  readonly body: BodyLimits;
  readonly analytics: AnalyticsLog;
  readonly services: RouteServices;
  /** Called once per finished request (metrics). */
  readonly onFinished?: (outcome: Outcome, kind: string | null, seconds: number) => void;
}

/** Trust is decided once per connection, not once per request. */
const peerTrust = new WeakMap<Socket, boolean>();

export function createRequestHandler(state: HandlerState, config: HandlerConfig) {
  const { trusted, analytics } = config;
  const { services } = config;

  function isTrusted(socket: Socket): boolean {
    let t = peerTrust.get(socket);
    if (t === undefined) peerTrust.set(socket, (t = trusted.trusts(socket.remoteAddress)));
    return t;
  }

  return function handle(req: IncomingMessage, res: ServerResponse): void {
    const start = performance.now();
    const id = requestId();
    const peerTrusted = isTrusted(req.socket);
    const target = req.url ?? '/';
    let url = target;
    let authority: string | undefined;
    if (url[0] !== '/') {
      const absolute = absoluteForm(url);
      if (absolute !== null) ({ authority, pathAndQuery: url } = absolute);
    }
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? '' : url.slice(q + 1);
    // A getter: read once.
    const headers = req.headers;
    const host = requestHost(headers, peerTrusted, authority);
    const method = req.method ?? 'GET';

    const client = () => clientIp(req.socket.remoteAddress, peerTrusted, headers['x-forwarded-for'], trusted);
    const line = (status: number, outcome: Outcome, capture: Capture | null) => {
      analytics.write({
        requestId: id,
        method,
        host,
        path,
        query,
        status,
        outcome,
        durationMs: performance.now() - start,
        client: {
          ip: lineIp(client(), config.anonymizeIp),
          userAgent: headers['user-agent'] ?? null,
          referer: headers.referer ?? null,
        },
        capture,
      });
    };

    const finish = (outcome: Outcome, capture: Capture | null) => {
      config.onFinished?.(outcome, capture?.type ?? null, (performance.now() - start) / 1000);
    };

    const hostLines = hostFieldLines(req.rawHeaders);
    let answer: Answer;
    if (target.length > config.maxUrlLength) answer = requestError('URL_TOO_LONG', path);
    else if (hostLines === 2) answer = requestError('DUPLICATE_HOST', path);
    // Node's own check (requireHostHeader) answered without an id or a line.
    else if (hostLines === 0 && req.httpVersionMinor === 1 && req.httpVersionMajor === 1) answer = requestError('MISSING_HOST', path);
    else if (path[0] !== '/') answer = errorAnswer('NOT_FOUND');
    else {
      const table = state.table;
      const domain = table?.domains.get(host);
      answer =
        domain === undefined
          ? notFound(path)
          : route(
              domain,
              {
                method,
                path,
                query,
                authorization: headers.authorization,
                userAgent: headers['user-agent'],
                accept: headers.accept,
                acceptEncoding: headers['accept-encoding'],
                ifNoneMatch: headers['if-none-match'],
              },
              services,
            );
    }

    if (answer.stream !== undefined) {
      res.setHeader('x-request-id', id);
      answer.stream(req, res, client()).then(
        ({ status, outcome, capture = answer.capture }) => {
          line(status, outcome, capture);
          finish(outcome, capture);
        },
        () => {
          // A stream that failed unexpectedly still answers, as its line says; never a client left waiting.
          if (!res.headersSent) send(res, method, id, requestError('UPSTREAM_UNREACHABLE', path), true, services);
          else cutOff(res);
          line(502, 'upstream-error', answer.capture);
          finish('upstream-error', answer.capture);
        },
      );
      return;
    }

    if (answer.bodyCapture !== undefined && hasBody(req)) {
      const bodyCapture = answer.bodyCapture;
      readEvents(req, config.body).then(
        (events) => {
          if (typeof events === 'string') {
            const refused = errorAnswer(events, null, events === 'UNSUPPORTED_ENCODING' ? { 'accept-encoding': BODY_CODINGS } : undefined);
            send(res, method, id, refused, true, services);
            line(refused.status, refused.outcome, null);
            finish(refused.outcome, null);
            return;
          }
          send(res, method, id, answer, false, services);
          if (events.length === 0) line(answer.status, answer.outcome, answer.capture);
          for (const event of events) line(answer.status, answer.outcome, bodyCapture(event));
          finish(answer.outcome, answer.capture);
        },
        () => {
          // The client went away mid-body: nothing to answer, still one line.
          line(400, 'rejected', null);
          finish('rejected', null);
        },
      );
      return;
    }

    send(res, method, id, answer, false, services);
    line(answer.status, answer.outcome, answer.capture);
    finish(answer.outcome, answer.capture);
    // A body nobody reads must still be drained for keep-alive to work.
    if (hasBody(req)) req.resume();
  };
}

/** An error found before routing, in the registry's format under `/v2` (docker prints it). */
function requestError(code: ErrorCode, path: string): Answer {
  return isDockerPath(path) ? ociError(code) : errorAnswer(code);
}

/** Hot path. Writes a non-streamed answer; HEAD gets the headers of GET. A Buffer body (one made once, over 8 KiB) goes in slices. */
function send(res: ServerResponse, method: string, id: string, answer: Answer, close: boolean, services: RouteServices): void {
  const body = answer.body;
  // A flat [name, value, ...] list: node writes it without building a map.
  const headers: string[] = ['x-request-id', id];
  if (answer.headers !== undefined) for (const name in answer.headers) headers.push(name, answer.headers[name]);
  // A 304 has no body and must not claim a length other than the 200's (RFC 9110 §15.4.5).
  const encoding = answer.bodyEncoding ?? 'utf8';
  if (answer.status !== 304) headers.push('content-length', answer.contentLength ?? (body === undefined ? '0' : String(Buffer.byteLength(body, encoding))));
  if (close) headers.push('connection', 'close');
  res.writeHead(answer.status, headers);
  if (body === undefined || method === 'HEAD') res.end();
  else if (typeof body === 'string') res.end(body, encoding);
  else endInSlices(res, body, services.sendTimeout, services.onSendTimeout);
}
