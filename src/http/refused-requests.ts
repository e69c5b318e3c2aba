/**
 * Requests that never reach the request handler: those node's parser
 * refuses (malformed request line, oversized head, timeouts), and CONNECT,
 * whose connection node closes without a word when nothing listens. Each
 * gets a 4xx with an `X-Request-Id` and one analytics line, like any other
 * request, and the connection is closed. A connection with nothing to
 * answer (reset by the client, or silent until it timed out) is closed
 * without either, and a TLS handshake sent to the plain port gets its 400
 * without a line.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { clientIp, lineIp } from '../analytics/client-ip.ts';
import type { AnalyticsLog } from '../analytics/analytics-log.ts';
import { requestId } from '../analytics/request-id.ts';
import { ERRORS } from '../errors.ts';
import type { TrustedProxies } from './trusted-proxies.ts';

export interface RefusedConfig {
  readonly analytics: AnalyticsLog;
  readonly trusted: TrustedProxies;
  readonly anonymizeIp: boolean;
  /** Counts the request (metrics). */
  readonly onRefused: () => void;
}

/** Parser errors (llhttp codes) answered with a status of their own; any other gets 400. */
const CLIENT_ERRORS: Readonly<Record<string, readonly [number, string]>> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
};

/** The first byte of a TLS ClientHello: the record's content type, handshake. */
const TLS_HANDSHAKE = 0x16;

const CONNECT_BODY = JSON.stringify({ error: { code: 'METHOD_NOT_ALLOWED', message: ERRORS.METHOD_NOT_ALLOWED.message } });

export function answerRefusedRequests(server: Server, config: RefusedConfig): void {
  const line = (id: string, method: string, status: number, ip: string | null) => {
    config.analytics.write({
      requestId: id,
      method,
      host: '',
      path: '',
      query: '',
      status,
      outcome: 'rejected',
      durationMs: 0,
      client: { ip: lineIp(ip, config.anonymizeIp), userAgent: null, referer: null },
      capture: null,
    });
    config.onRefused();
  };

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // As node's default handler does: no answer on a connection the client
    // reset (also one idle between requests), nor a second one on a socket
    // whose response has begun (the error is in bytes after a request).
    // Nothing is answered, so no line is written either.
    const current = (socket as Socket & { _httpMessage?: { headersSent: boolean } })._httpMessage;
    if (!socket.writable || err.code === 'ECONNRESET' || current?.headersSent === true) return void socket.destroy();
    // A connection that never sent a byte (a browser's preconnect) and timed out: closed, as nginx does, and no request to count.
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT' && socket.bytesRead === 0) return void socket.destroy();
    const [status, reason] = CLIENT_ERRORS[err.code ?? ''] ?? [400, 'Bad Request'];
    const id = requestId();
    // A TLS handshake (a record of type 22) is no request: docker, podman and skopeo try HTTPS
    // first with a registry on 127.0.0.1 or an insecure one, and take this answer for "not TLS".
    const tlsHandshake = (err as { rawPacket?: Buffer }).rawPacket?.[0] === TLS_HANDSHAKE;
    // The head was not parsed: the socket's address is all there is.
    if (!tlsHandshake) line(id, '', status, clientIp(socket.remoteAddress, false, undefined, config.trusted));
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nx-request-id: ${id}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
  });

  // The gateway is no forward proxy (RFC 9110 §9.3.6): 405, and the methods it has.
  server.on('connect', (req, socket: Socket) => {
    const id = requestId();
    const peer = req.socket.remoteAddress;
    line(id, 'CONNECT', 405, clientIp(peer, config.trusted.trusts(peer), req.headers['x-forwarded-for'], config.trusted));
    socket.on('error', () => undefined);
    socket.end(
      `HTTP/1.1 405 Method Not Allowed\r\nx-request-id: ${id}\r\nallow: GET, HEAD, POST\r\ncontent-type: application/json\r\n` +
        `content-length: ${CONNECT_BODY.length}\r\nconnection: close\r\n\r\n${CONNECT_BODY}`,
    );
  });
}
