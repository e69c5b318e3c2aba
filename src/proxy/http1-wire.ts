/**
 * HTTP/1.1 messages as the backend client writes and reads them (RFC 9112):
 * the request head, the response head, how a body is delimited, and the
 * chunked coding. Pure functions and small state machines over bytes; the
 * connection (backend-connection.ts) feeds them its reads.
 */
import { BackendError } from './backend-error.ts';

/** Largest response head accepted (node:http's default is 16 KiB). */
const MAX_HEAD = 64 * 1024;
/** Largest chunk-size or trailer line. */
const MAX_LINE = 4096;

/** RFC 9110 §5.6.2 token: a field name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** RFC 9112 §4: the status line, interim (1xx) answers included; the space before an empty reason phrase may be missing, as with node:http's parser. */
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?:[ \r]|$)/;
/** Field values: visible ASCII, spaces, tabs and obs-text (RFC 9110 §5.5), written as latin1 bytes. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** RFC 9112 §7.1: chunk-size, then extensions, which are ignored. */
const CHUNK_SIZE = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;.*)?$/;

/** How a response body is delimited (RFC 9112 §6.3). */
export type Framing = { kind: 'none' } | { kind: 'length'; remaining: number } | { kind: 'chunked' } | { kind: 'close' };

/** A response head: status, fields (name in lower case, value, name, value, ...), and whether it was HTTP/1.1. */
export interface ResponseHead {
  readonly status: number;
  readonly http11: boolean;
  readonly fields: readonly string[];
}

/** The request line and fields of a GET or HEAD without a body, `Host` first. */
export function requestHead(url: URL, method: string, fields: readonly string[]): string {
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) throw new BackendError('unreachable', `invalid request field ${JSON.stringify(name)}`);
    head += `${name}: ${value}\r\n`;
  }
  return head + '\r\n';
}

/** The first value of a field, or undefined. */
export function firstField(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Every comma-separated element of a field's values, trimmed and in lower case. */
function fieldList(fields: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) for (const v of fields[i + 1].split(',')) out.push(v.trim().toLowerCase());
  return out;
}

/**
 * Collects a response head across reads, up to the blank line that ends
 * it. Interim answers (100, 103) are skipped; 101 was not asked for.
 */
export class HeadReader {
  #text = '';

  /** Reads [from, to) of `buffer`: the final head and where the body starts in `buffer`, or null when the head goes on in the next read. */
  read(buffer: Buffer, from: number, to: number): { head: ResponseHead; bodyAt: number } | null {
    for (;;) {
      // The blank line may begin in an earlier read.
      const tail = this.#text.slice(-3);
      const joint = tail === '' ? -1 : (tail + buffer.toString('latin1', from, Math.min(to, from + 3))).indexOf('\r\n\r\n');
      let end: number;
      if (joint >= 0) end = from + joint + 4 - tail.length;
      else {
        const k = buffer.subarray(from, to).indexOf('\r\n\r\n');
        if (k < 0) {
          bareLineFeed(buffer, from, to, tail);
          this.#text += buffer.toString('latin1', from, to);
          if (this.#text.length > MAX_HEAD) throw new BackendError('unreachable', 'response head too large');
          return null;
        }
        end = from + k + 4;
      }
      if (this.#text.length + end - from > MAX_HEAD) throw new BackendError('unreachable', 'response head too large');
      bareLineFeed(buffer, from, end, tail);
      const text = (this.#text + buffer.toString('latin1', from, end)).slice(0, -4);
      this.#text = '';
      const head = parseHead(text);
      if (head.status >= 200) return { head, bodyAt: end };
      if (head.status === 101) throw new BackendError('unreachable', 'unexpected protocol switch');
      from = end;
    }
  }
}

/**
 * Throws on a line feed without its carriage return in [from, to) of
 * `buffer`; `before` ends with the bytes that came before `from`. A head
 * whose lines end in bare LFs would otherwise never end here, and the
 * client would wait for the silence timeout; node:http's client refuses
 * them too (RFC 9112 §2.2 allows either).
 */
function bareLineFeed(buffer: Buffer, from: number, to: number, before: string): void {
  const bytes = buffer.subarray(from, to);
  for (let lf = bytes.indexOf(10); lf >= 0; lf = bytes.indexOf(10, lf + 1)) {
    if ((lf > 0 ? bytes[lf - 1] : before.charCodeAt(before.length - 1)) !== 13) throw new BackendError('unreachable', 'a line of the response head ends in a bare LF');
  }
}

/** The status line and fields of a head without its blank line. */
function parseHead(text: string): ResponseHead {
  const status = STATUS_LINE.exec(text);
  if (status === null) throw new BackendError('unreachable', 'not an HTTP/1.x response');
  const fields: string[] = [];
  const lines = text.split('\r\n');
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(':');
    // No white space before the colon, and no obs-fold (RFC 9112 §5.1, §5.2).
    const name = colon > 0 ? line.slice(0, colon) : '';
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) throw new BackendError('unreachable', 'malformed response field');
    fields.push(name.toLowerCase(), value);
  }
  return { status: Number(status[2]), http11: status[1] === '1', fields };
}

/** How the body of an answer to `method` is delimited (RFC 9112 §6.3). */
export function framing(method: string, head: ResponseHead): Framing {
  if (method === 'HEAD' || head.status === 204 || head.status === 304) return { kind: 'none' };
  const codings = fieldList(head.fields, 'transfer-encoding');
  if (codings.length > 0) {
    // Other codings (gzip, chunked) would reach the client decoded of chunked only, and labelled as nothing: refused.
    if (codings.length > 1 || codings[0] !== 'chunked') throw new BackendError('unreachable', `transfer coding not supported: ${codings.join(', ')}`);
    return { kind: 'chunked' };
  }
  const lengths = fieldList(head.fields, 'content-length');
  if (lengths.length > 0) {
    if (!lengths.every((v) => /^\d{1,15}$/.test(v) && v === lengths[0])) throw new BackendError('unreachable', 'invalid Content-Length');
    const remaining = Number(lengths[0]);
    return remaining === 0 ? { kind: 'none' } : { kind: 'length', remaining };
  }
  return { kind: 'close' };
}

/** Whether the connection can carry another request after this answer (RFC 9112 §9.3, §6.3). */
export function keepsConnection(head: ResponseHead, body: Framing): boolean {
  if (!head.http11 || body.kind === 'close' || fieldList(head.fields, 'connection').includes('close')) return false;
  // Both lengths given: a message smuggled past one of them is possible (RFC 9112 §6.3 item 3).
  return !(firstField(head.fields, 'transfer-encoding') !== undefined && firstField(head.fields, 'content-length') !== undefined);
}

/** The chunked coding (RFC 9112 §7.1), decoded across reads; trailer fields are dropped. */
export class ChunkedDecoder {
  #state: 'size' | 'data' | 'data-end' | 'trailer' | 'done' = 'size';
  #left = 0;
  #line = '';

  get done(): boolean {
    return this.#state === 'done';
  }

  /** Reads [from, to) of `buffer`, adding the data's [start, end) pairs to `pieces`; returns where it stopped (at the end of the body, or `to`). */
  decode(buffer: Buffer, from: number, to: number, pieces: number[]): number {
    let at = from;
    while (at < to && this.#state !== 'done') {
      if (this.#state === 'data') {
        const take = Math.min(this.#left, to - at);
        pieces.push(at, at + take);
        at += take;
        this.#left -= take;
        if (this.#left === 0) this.#state = 'data-end';
        continue;
      }
      const lf = buffer.indexOf(10, at);
      const end = lf < 0 || lf >= to ? to : lf + 1;
      this.#line += buffer.toString('latin1', at, end);
      at = end;
      if (this.#line.length > MAX_LINE) throw new BackendError('unreachable', 'chunk line too long');
      if (!this.#line.endsWith('\n')) continue;
      if (!this.#line.endsWith('\r\n')) throw new BackendError('unreachable', 'a chunk line ends in a bare LF');
      const line = this.#line.slice(0, -2);
      this.#line = '';
      if (this.#state === 'data-end') {
        if (line !== '') throw new BackendError('unreachable', 'malformed chunk');
        this.#state = 'size';
      } else if (this.#state === 'size') {
        const size = CHUNK_SIZE.exec(line);
        if (size === null) throw new BackendError('unreachable', 'malformed chunk size');
        this.#left = parseInt(size[1], 16);
        this.#state = this.#left === 0 ? 'trailer' : 'data';
      } else if (line === '') this.#state = 'done';
    }
    return at;
  }
}
