/**
 * Request bodies as event streams (SPEC §5, §7): JSON values concatenated or
 * newline-separated. Each object is one event; other values are skipped;
 * reading stops at the first text that is not JSON (or nests deeper than
 * MAX_EVENT_DEPTH), and after `maxEvents`.
 * A body sent with a `Content-Encoding` (gzip, deflate, br, zstd) is
 * decoded first, to at most `maxBytes` too.
 */
import type { IncomingMessage } from 'node:http';
import { promisify } from 'node:util';
import * as zlib from 'node:zlib';
import { skipSpace, valueEnd } from '../json-scan.ts';

type Decoder = (body: Buffer, options: { maxOutputLength: number }) => Promise<Buffer>;

/** RFC 9110 §8.4.1: the content codings a body may come in (zstd since node 22.15). */
const DECODERS = new Map<string, Decoder>([
  ['gzip', promisify(zlib.gunzip)],
  ['x-gzip', promisify(zlib.gunzip)],
  ['deflate', promisify(zlib.inflate)],
  ['br', promisify(zlib.brotliDecompress)],
  ...(typeof zlib.zstdDecompress === 'function' ? [['zstd', promisify(zlib.zstdDecompress)] as const] : []),
]);

/** For the `Accept-Encoding` of a 415 (RFC 9110 §12.5.3). */
export const BODY_CODINGS = [...DECODERS.keys()].filter((c) => c !== 'x-gzip').join(', ');

/** Why a body gave no events: the answer's error code. */
export type BodyRefusal = 'BODY_TOO_LARGE' | 'UNSUPPORTED_ENCODING' | 'BAD_CONTENT_CODING';

/**
 * How deep an event may nest objects and arrays. A deeper one ends the
 * reading, as text that is not JSON does: its analytics line could not be
 * written (JSON.stringify runs out of stack at 4,000 to 6,000 levels: a
 * 60 KB body nesting 30,000 ended the process), nor read by the feed's
 * consumers (Python's json stops near 1,000 levels, jq 1.6, Debian 12's,
 * past 256).
 */
export const MAX_EVENT_DEPTH = 100;

/** Between concatenated values, a scalar ends at white space or where the next value starts. */
const BETWEEN_VALUES = ' \n\r\t{["';

export interface BodyLimits {
  /** Largest body read, in bytes; a larger one is refused with 413. */
  readonly maxBytes: number;
  /** Events kept per request; the rest of the body is ignored. */
  readonly maxEvents: number;
}

/** True when the request announces a body (RFC 9112 §6.3). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  return req.headers['transfer-encoding'] !== undefined;
}

/**
 * How much of a body past the limit is still read, and dropped, before
 * the 413 goes out: a client still sending reads the answer then. Closing
 * the connection with its bytes unread makes the kernel reset it, and the
 * client sees a broken pipe instead (nginx reads on for the same reason,
 * its "lingering close"). Past these, the answer goes out at once.
 */
const DRAIN_BYTES = 64 * 1024 * 1024;
const DRAIN_MS = 2000;

/** Reads the whole body, or returns null when it is larger than `maxBytes` (once the rest is read, within the bounds above). */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > DRAIN_BYTES) {
      resolve(null);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let draining: NodeJS.Timeout | null = null;
    const drain = () => {
      chunks.length = 0;
      draining ??= setTimeout(() => resolve(null), DRAIN_MS);
    };
    if (declared > maxBytes) drain();
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) drain();
      if (draining === null) chunks.push(chunk);
      else if (size > DRAIN_BYTES) resolve(null);
    });
    req.once('end', () => {
      if (draining !== null) clearTimeout(draining);
      resolve(draining === null ? Buffer.concat(chunks) : null);
    });
    req.once('error', reject);
  });
}

/**
 * The events of the request's body, or why there are none to be had;
 * rejects when the client left mid-body. A coding the gateway cannot
 * decode is refused before the body is read.
 */
export async function readEvents(req: IncomingMessage, limits: BodyLimits): Promise<unknown[] | BodyRefusal> {
  const header = req.headers['content-encoding'];
  // Applied in the order listed: decoded in the reverse order.
  const decoders: Decoder[] = [];
  for (const coding of header === undefined ? [] : header.split(',')) {
    const name = coding.trim().toLowerCase();
    if (name === 'identity' || name === '') continue;
    const decoder = DECODERS.get(name);
    if (decoder === undefined) return 'UNSUPPORTED_ENCODING';
    decoders.unshift(decoder);
  }
  let body = await readBody(req, limits.maxBytes);
  if (body === null) return 'BODY_TOO_LARGE';
  for (const decode of decoders) {
    try {
      body = await decode(body, { maxOutputLength: limits.maxBytes });
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? 'BODY_TOO_LARGE' : 'BAD_CONTENT_CODING';
    }
  }
  const text = body.toString('utf8');
  // RFC 8259 §8.1: a parser may ignore a byte order mark (some Windows tools write one).
  return parseEvents(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, limits.maxEvents);
}

/** Splits `text` into the JSON objects it holds, in order. */
export function parseEvents(text: string, maxEvents: number): unknown[] {
  const events: unknown[] = [];
  let i = 0;
  while (events.length < maxEvents) {
    i = skipSpace(text, i);
    if (i >= text.length) break;
    const end = valueEnd(text, i, BETWEEN_VALUES, MAX_EVENT_DEPTH);
    if (end === -1) break;
    let value: unknown;
    try {
      value = JSON.parse(text.slice(i, end));
    } catch {
      break;
    }
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) events.push(value);
    i = end;
  }
  return events;
}
