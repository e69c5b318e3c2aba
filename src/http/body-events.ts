/**
 * Request bodies as event streams (SPEC §5, §7): JSON values concatenated or
 * newline-separated. Each object is one event; other values are skipped;
 * reading stops at the first text that is not JSON, and after `maxEvents`.
 */
import type { IncomingMessage } from 'node:http';
import { skipSpace, valueEnd } from '../json-scan.ts';

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

/** Reads the whole body, or returns null when it is larger than `maxBytes`. */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (declared > maxBytes) {
      resolve(null);
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        req.off('data', onData);
        resolve(null);
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks)));
    req.once('error', reject);
  });
}

/** Splits `text` into the JSON objects it holds, in order. */
export function parseEvents(text: string, maxEvents: number): unknown[] {
  const events: unknown[] = [];
  let i = 0;
  while (events.length < maxEvents) {
    i = skipSpace(text, i);
    if (i >= text.length) break;
    const end = valueEnd(text, i, BETWEEN_VALUES);
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
