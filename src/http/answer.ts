/**
 * What a matched rule asks the server to do. Rule modules build answers;
 * only the request handler touches the response (or a streamed answer's
 * own function) and writes analytics lines, so every path through the
 * server logs the same way.
 */
import type { Capture, Outcome } from '../analytics/capture.ts';
import { ERRORS, type ErrorCode } from '../errors.ts';
import type { ServerResponse, IncomingMessage } from 'node:http';

/** How to read a request body into capture lines (file rules, telemetry). */
export type BodyCapture = (event: unknown) => Capture;

export interface Answer {
  readonly status: number;
  readonly outcome: Outcome;
  readonly capture: Capture | null;
  /** Response headers (lower-case names), Location included for redirects. */
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * Node writes a string body with the head in one write, and a Buffer with
   * the head through writev (≈ 8 µs more per answer), but a string is
   * encoded on every answer (≈ 1 µs per KB): bodies made once use
   * `servedBody`. Binary content is a latin1 string with
   * `bodyEncoding: 'latin1'`.
   */
  readonly body?: string | Buffer;
  readonly bodyEncoding?: 'latin1';
  /** The body's length in bytes, when it was measured once (bodies made at compile time); else measured per answer. */
  readonly contentLength?: string;
  /** Set for errors: the stable code (SPEC errors table). */
  readonly error?: ErrorCode;
  /** When set and the request has a body, one capture line per JSON object. */
  readonly bodyCapture?: BodyCapture;
  /**
   * Set when the rule streams the answer itself (proxy, npm documents):
   * resolves to the status and outcome once the response is finished.
   */
  readonly stream?: (req: IncomingMessage, res: ServerResponse, clientIp: string | null) => Promise<{ status: number; outcome: Outcome; capture?: Capture }>;
}

const EMPTY: Readonly<Record<string, string>> = Object.freeze({});

/** Up to this size a body made once is served as a string (see `Answer.body`). */
const STRING_BODY_MAX = 8 * 1024;

/**
 * A body made once (when the manifest is compiled) and served many times:
 * a small one as a string, a large one as its UTF-8 bytes. Measured under
 * load: a project page (≈ 1 KB) costs 36.4 µs of CPU as a string and
 * 44.5 µs as a Buffer; the root index of 10,000 projects (≈ 500 KB) 712 µs
 * as a string and 192 µs as a Buffer.
 */
export function servedBody(text: string): { readonly body: string | Buffer; readonly contentLength: string } {
  const bytes = Buffer.byteLength(text);
  return { body: text.length <= STRING_BODY_MAX ? text : Buffer.from(text, 'utf8'), contentLength: String(bytes) };
}

/** `307 Temporary Redirect` (SPEC §1): keeps the method, never cached. */
export function redirect(location: string, capture: Capture | null, bodyCapture?: BodyCapture): Answer {
  return { status: 307, outcome: 'redirect', capture, headers: { location }, bodyCapture };
}

/** `200` with an empty body: a counted endpoint. */
export function emptyOk(capture: Capture | null, bodyCapture?: BodyCapture): Answer {
  return { status: 200, outcome: 'respond', capture, headers: EMPTY, bodyCapture };
}

/** Outcome word for an error status. */
function outcomeOf(status: number): Outcome {
  if (status === 404) return 'not-found';
  if (status === 401) return 'unauthorized';
  if (status === 502 || status === 504) return 'upstream-error';
  return 'rejected';
}

/** Each error's body, serialized once. */
const ERROR_BODIES = new Map(Object.entries(ERRORS).map(([code, { message }]) => [code, JSON.stringify({ error: { code, message } })]));

/** A JSON error answer `{"error":{"code","message"}}` from the errors table. */
export function errorAnswer(code: ErrorCode, capture: Capture | null = null, headers?: Record<string, string>): Answer {
  const { status } = ERRORS[code];
  return {
    status,
    outcome: outcomeOf(status),
    capture,
    error: code,
    headers: { 'content-type': 'application/json', ...headers },
    body: ERROR_BODIES.get(code),
  };
}
