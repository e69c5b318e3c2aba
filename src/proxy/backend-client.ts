/**
 * The registry proxy's HTTP/1.1 client (RFC 9112): GET and HEAD without a
 * body, to one backend at a time, over kept-alive connections.
 *
 * Each connection reads into one buffer of its own, reused for its whole
 * life (`onread`), and a body goes to the client straight from that buffer:
 * the connection stops reading until the client's socket has taken the
 * bytes, so nothing is copied or allocated per read. node:http's client
 * allocates a fresh 64 KiB buffer for every read instead; a 1 GiB blob then
 * set off some 40 full garbage collections, each marking the whole routing
 * table (bench/results.md, proxy-blob).
 *
 * Failures reject with a BackendError before the head, and break the
 * client's response after it; a kept-alive connection that fails before
 * answering is retried once on a new one (GET and HEAD are idempotent).
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { ServerResponse } from 'node:http';

/**
 * Bytes read at a time, per connection. A 1 GiB blob over loopback took
 * 0.73 s of CPU with 64 KiB reads, 0.52 s with 256 KiB and 0.39 s with
 * 1 MiB. Pages of the buffer are touched only by reads that fill them, so
 * a connection that only ever carried manifests holds a few KiB of it.
 */
const READ_SIZE = 256 * 1024;
/** Largest response head accepted (node:http's default is 16 KiB). */
const MAX_HEAD = 64 * 1024;
/** Largest chunk-size or trailer line. */
const MAX_LINE = 4096;
/** An idle connection is closed after this long, before most servers do (5 s and up). */
const IDLE_MS = 4000;
/** Idle connections kept per backend (node:http's Agent keeps 256). */
const MAX_IDLE = 256;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: |$)/;
/** Field values: visible ASCII, spaces, tabs and obs-text (RFC 9110 §5.5), written as latin1 bytes. */
const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

export type BackendFailure = 'timeout' | 'unreachable';

export class BackendError extends Error {
  readonly failure: BackendFailure;
  constructor(failure: BackendFailure, message: string, cause?: unknown) {
    super(message, { cause });
    this.failure = failure;
  }
}

export interface BackendClientOptions {
  /** Time to open a connection, in ms. */
  readonly connectTimeout: number;
  /** Time the backend may stay silent: before the head, and between reads of the body, in ms. */
  readonly silenceTimeout: number;
}

/** A backend's answer: its head, then its body, taken once. */
export interface BackendAnswer {
  readonly status: number;
  /** Header fields in the order received: name (lower case), value, name, value, ... */
  readonly fields: readonly string[];
  /** The first value of a field, or undefined. */
  field(name: string): string | undefined;
  /** Writes the body to `res` and ends it; resolves when the body is complete or broken (then `res` is destroyed). */
  pipeTo(res: ServerResponse): Promise<void>;
  /** Drops the body; the connection is kept when it ends cleanly. Once the body is taken, does nothing. */
  discard(): void;
}

type Framing = { kind: 'none' } | { kind: 'length'; remaining: number } | { kind: 'chunked' } | { kind: 'close' };
type ChunkState = 'size' | 'data' | 'data-end' | 'trailer' | 'done';

export class BackendClient {
  readonly #options: BackendClientOptions;
  readonly #idle = new Map<string, Connection[]>();

  constructor(options: BackendClientOptions) {
    this.#options = options;
  }

  /** Sends GET or HEAD for `url` with `fields` (name, value, name, value, ...; Host is added). */
  async request(url: URL, method: 'GET' | 'HEAD', fields: readonly string[]): Promise<BackendAnswer> {
    const head = requestHead(url, method, fields);
    const reused = this.#takeIdle(url.origin);
    if (reused !== null) {
      try {
        return await reused.exchange(head, method);
      } catch (e) {
        // The backend closed it while idle: try once more, on a new one.
        if (!(e instanceof StaleConnection)) throw e;
      }
    }
    const fresh = await Connection.open(url, this.#options, (c) => this.#keep(url.origin, c));
    return fresh.exchange(head, method);
  }

  /** Closes the idle connections. */
  close(): void {
    for (const list of this.#idle.values()) for (const c of list) c.destroy();
    this.#idle.clear();
  }

  #takeIdle(origin: string): Connection | null {
    const list = this.#idle.get(origin);
    const c = list?.pop() ?? null;
    if (list?.length === 0) this.#idle.delete(origin);
    c?.wake();
    return c;
  }

  #keep(origin: string, c: Connection): void {
    let list = this.#idle.get(origin);
    if (list === undefined) this.#idle.set(origin, (list = []));
    if (list.length >= MAX_IDLE) return c.destroy();
    list.push(c);
    c.sleep(() => {
      const at = list.indexOf(c);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0 && this.#idle.get(origin) === list) this.#idle.delete(origin);
    });
  }
}

/** A kept-alive connection failed before any byte of the answer. */
class StaleConnection extends Error {}

/** The request line and fields, ready to write. */
function requestHead(url: URL, method: string, fields: readonly string[]): string {
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nhost: ${url.host}\r\n`;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    if (!TOKEN.test(name) || BAD_VALUE.test(value)) throw new BackendError('unreachable', `invalid request field ${JSON.stringify(name)}`);
    head += `${name}: ${value}\r\n`;
  }
  return head + '\r\n';
}

/**
 * Where a connection is: opening; waiting for an answer's head; holding the
 * head's first body bytes until the caller takes the body; reading the
 * body; ending the client's response; parked in the pool; closed.
 */
type Phase = 'opening' | 'head' | 'held' | 'body' | 'ending' | 'idle' | 'closed';

/** One connection to a backend and the parse state of the answer in flight. */
class Connection {
  readonly #socket: Socket;
  readonly #buffer: Buffer;
  readonly #options: BackendClientOptions;
  readonly #release: (c: Connection) => void;
  #phase: Phase = 'opening';
  /** Answers completed on this connection. */
  #served = 0;
  /** Bytes of the current answer seen so far. */
  #received = 0;
  #method = 'GET';
  #head = '';
  #framing: Framing = { kind: 'none' };
  #chunk: ChunkState = 'size';
  #chunkLeft = 0;
  #line = '';
  #reusable = true;
  /** The body broke while held: the caller's response is cut off when it takes it. */
  #broken = false;
  /** Where the body goes; null drops it. */
  #sink: ServerResponse | null = null;
  /** Unprocessed bytes of the read that ended the head. */
  #held = { from: 0, to: 0 };
  #onHead: ((a: BackendAnswer) => void) | null = null;
  #onFail: ((e: Error) => void) | null = null;
  #onBodyEnd: (() => void) | null = null;
  #onIdleClose: (() => void) | null = null;

  private constructor(socket: Socket, buffer: Buffer, options: BackendClientOptions, release: (c: Connection) => void) {
    this.#socket = socket;
    this.#buffer = buffer;
    this.#options = options;
    this.#release = release;
    socket.on('error', (e) => this.#fail(e));
    socket.on('end', () => this.#fail(new Error('the backend closed the connection')));
    socket.on('close', () => this.#fail(new Error('connection closed')));
    socket.on('timeout', () => this.#fail(new BackendError('timeout', 'the backend stayed silent')));
  }

  static open(url: URL, options: BackendClientOptions, release: (c: Connection) => void): Promise<Connection> {
    const buffer = Buffer.allocUnsafe(READ_SIZE);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    let connection: Connection | null = null;
    const onread = { buffer, callback: (n: number) => connection!.read(n) };
    const socket =
      url.protocol === 'https:'
        ? // `onread` works for TLS too (node ≥ 15.1), though @types/node does not list it.
          tlsConnect({ host, port, servername: isIP(host) === 0 ? host : undefined, ALPNProtocols: ['http/1.1'], onread } as ConnectionOptions)
        : netConnect({ host, port, onread });
    connection = new Connection(socket, buffer, options, release);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new BackendError('timeout', 'the backend did not accept the connection in time'));
      }, options.connectTimeout);
      const failed = (e: Error): void => {
        clearTimeout(timer);
        reject(new BackendError('unreachable', e.message, e));
      };
      socket.once('error', failed);
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', failed);
        socket.setNoDelay(true);
        resolve(connection!);
      });
    });
  }

  /** Writes a request and resolves with the answer's head. */
  exchange(head: string, method: string): Promise<BackendAnswer> {
    this.#phase = 'head';
    this.#method = method;
    this.#received = 0;
    this.#head = '';
    this.#broken = false;
    this.#sink = null;
    return new Promise((resolve, reject) => {
      this.#onHead = resolve;
      this.#onFail = reject;
      this.#socket.setTimeout(this.#options.silenceTimeout);
      this.#socket.write(head, 'latin1');
    });
  }

  /** Parked in the pool: any byte, close or the idle time ends it. */
  sleep(onClose: () => void): void {
    this.#phase = 'idle';
    this.#onIdleClose = onClose;
    this.#socket.setTimeout(IDLE_MS);
    // Reading on, so that a close by the backend is seen.
    this.#socket.resume();
  }

  wake(): void {
    this.#onIdleClose = null;
    this.#socket.setTimeout(0);
  }

  destroy(): void {
    this.#socket.destroy();
  }

  /** onread: `n` new bytes at the start of the buffer. Returns false to stop reading. */
  read(n: number): boolean {
    if (this.#phase !== 'head' && this.#phase !== 'body') {
      // Bytes nobody asked for: the connection cannot be trusted.
      this.#fail(new BackendError('unreachable', 'unexpected bytes from the backend'));
      return false;
    }
    this.#received += n;
    try {
      let at = 0;
      if (this.#phase === 'head') {
        at = this.#readHead(0, n);
        if (this.#phase === 'head') return true;
        // The caller decides what becomes of the body; until then, stop.
        this.#held = { from: at, to: n };
        this.#stop();
        return false;
      }
      return this.#readBody(at, n);
    } catch (e) {
      this.#fail(e as Error);
      return false;
    }
  }

  /** Reads no further until #go; the silence timer is off meanwhile. */
  #stop(): void {
    this.#socket.setTimeout(0);
    this.#socket.pause();
  }

  #go(): void {
    if (this.#phase !== 'body') return;
    this.#socket.setTimeout(this.#options.silenceTimeout);
    this.#socket.resume();
  }

  /** Collects the head; at its end, settles the head promise. Returns where the body starts. */
  #readHead(from: number, to: number): number {
    for (;;) {
      // The blank line may begin in an earlier read.
      const tail = this.#head.slice(-3);
      const joint = tail === '' ? -1 : (tail + this.#buffer.toString('latin1', from, Math.min(to, from + 3))).indexOf('\r\n\r\n');
      let end: number;
      if (joint >= 0) end = from + joint + 4 - tail.length;
      else {
        const k = this.#buffer.subarray(from, to).indexOf('\r\n\r\n');
        if (k < 0) {
          this.#head += this.#buffer.toString('latin1', from, to);
          if (this.#head.length > MAX_HEAD) throw new BackendError('unreachable', 'response head too large');
          return to;
        }
        end = from + k + 4;
      }
      if (this.#head.length + end - from > MAX_HEAD) throw new BackendError('unreachable', 'response head too large');
      const whole = this.#head + this.#buffer.toString('latin1', from, end);
      const text = whole.slice(0, -4);
      this.#head = '';
      const status = STATUS_LINE.exec(text);
      if (status === null) throw new BackendError('unreachable', 'not an HTTP/1.x response');
      const code = Number(status[2]);
      if (code >= 200) {
        this.#answer(code, status[1] === '1', text);
        return end;
      }
      // Interim answers (100, 103) come before the real one; 101 was not asked for.
      if (code === 101) throw new BackendError('unreachable', 'unexpected protocol switch');
      from = end;
    }
  }

  #answer(status: number, http11: boolean, text: string): void {
    const fields: string[] = [];
    const lines = text.split('\r\n');
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i];
      const colon = line.indexOf(':');
      const name = colon > 0 ? line.slice(0, colon) : '';
      const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
      if (!TOKEN.test(name) || BAD_VALUE.test(value)) throw new BackendError('unreachable', 'malformed response field');
      fields.push(name.toLowerCase(), value);
    }
    const field = (name: string): string | undefined => {
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
      return undefined;
    };
    const values = (name: string): string[] => {
      const out: string[] = [];
      for (let i = 0; i < fields.length; i += 2) if (fields[i] === name) out.push(...fields[i + 1].split(',').map((v) => v.trim().toLowerCase()));
      return out;
    };
    const codings = values('transfer-encoding');
    const lengths = values('content-length');
    this.#framing = framing(this.#method, status, codings, lengths);
    this.#reusable = http11 && !values('connection').includes('close') && this.#framing.kind !== 'close' && !(codings.length > 0 && lengths.length > 0);
    this.#chunk = 'size';
    this.#line = '';
    this.#phase = 'held';
    const onHead = this.#onHead!;
    this.#onHead = null;
    this.#onFail = null;
    onHead({ status, fields, field, pipeTo: (res) => this.#take(res), discard: () => void this.#take(null) });
  }

  /** The caller takes the body: go on with the bytes held since the head. */
  #take(sink: ServerResponse | null): Promise<void> {
    if (this.#phase !== 'held') return Promise.resolve();
    return new Promise((resolve) => {
      this.#sink = sink;
      this.#onBodyEnd = resolve;
      sink?.once('close', () => {
        if (this.#sink === sink && (this.#phase === 'body' || this.#phase === 'ending')) this.#break();
      });
      if (this.#broken) return this.#break();
      this.#phase = 'body';
      const { from, to } = this.#held;
      if (this.#framing.kind === 'none') {
        // Bytes after a head that has no body: the backend cannot be trusted with the next request.
        if (from < to) this.#reusable = false;
        return this.#finish();
      }
      if (from === to || this.#readBody(from, to)) this.#go();
    });
  }

  /** Writes the body bytes in [from, to) to the sink. Returns false to stop reading until they are out. */
  #readBody(from: number, to: number): boolean {
    const pieces: number[] = [];
    let at = from;
    let complete = false;
    const f = this.#framing;
    if (f.kind === 'length') {
      const take = Math.min(f.remaining, to - at);
      pieces.push(at, at + take);
      at += take;
      f.remaining -= take;
      complete = f.remaining === 0;
    } else if (f.kind === 'close') {
      pieces.push(at, to);
      at = to;
    } else if (f.kind === 'chunked') {
      at = this.#readChunked(at, to, pieces);
      complete = this.#chunk === 'done';
    }
    if (complete && at < to) this.#reusable = false;
    const sink = this.#sink;
    let waiting = false;
    if (sink !== null && !sink.destroyed) {
      for (let i = 0; i < pieces.length; i += 2) {
        const piece = this.#buffer.subarray(pieces[i], pieces[i + 1]);
        if (complete || i + 2 < pieces.length) sink.write(piece);
        else {
          // The buffer is read into again only once these bytes are out.
          waiting = true;
          sink.write(piece, () => this.#go());
        }
      }
    }
    if (complete) {
      this.#finish();
      return false;
    }
    if (waiting) this.#stop();
    return !waiting;
  }

  /** Chunked coding (RFC 9112 §7.1): adds the data in [from, to) to `pieces`; returns where it stopped. */
  #readChunked(from: number, to: number, pieces: number[]): number {
    let at = from;
    while (at < to && this.#chunk !== 'done') {
      if (this.#chunk === 'data') {
        const take = Math.min(this.#chunkLeft, to - at);
        pieces.push(at, at + take);
        at += take;
        this.#chunkLeft -= take;
        if (this.#chunkLeft === 0) this.#chunk = 'data-end';
        continue;
      }
      const lf = this.#buffer.indexOf(10, at);
      const end = lf < 0 || lf >= to ? to : lf + 1;
      this.#line += this.#buffer.toString('latin1', at, end);
      at = end;
      if (this.#line.length > MAX_LINE) throw new BackendError('unreachable', 'chunk line too long');
      if (!this.#line.endsWith('\r\n')) continue;
      const line = this.#line.slice(0, -2);
      this.#line = '';
      if (this.#chunk === 'data-end') {
        if (line !== '') throw new BackendError('unreachable', 'malformed chunk');
        this.#chunk = 'size';
      } else if (this.#chunk === 'size') {
        const size = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;.*)?$/.exec(line);
        if (size === null) throw new BackendError('unreachable', 'malformed chunk size');
        this.#chunkLeft = parseInt(size[1], 16);
        this.#chunk = this.#chunkLeft === 0 ? 'trailer' : 'data';
      } else if (line === '') this.#chunk = 'done'; // trailer fields are dropped
    }
    return at;
  }

  /**
   * The body is complete: end the client's response. The connection goes
   * back to the pool only once the response is out, since its last bytes
   * may still be in the buffer.
   */
  #finish(): void {
    this.#phase = 'ending';
    this.#socket.setTimeout(0);
    const sink = this.#sink;
    if (sink === null || sink.destroyed) return this.#settle();
    sink.end(() => {
      if (this.#phase === 'ending') this.#settle();
    });
  }

  #settle(): void {
    this.#served++;
    const resolve = this.#onBodyEnd;
    this.#onBodyEnd = null;
    if (this.#reusable) this.#release(this);
    else this.#close();
    resolve?.();
  }

  /** The body cannot complete: the client's response is cut off, the connection closed. */
  #break(): void {
    this.#close();
    if (this.#sink !== null && !this.#sink.destroyed) this.#sink.destroy();
    const resolve = this.#onBodyEnd;
    this.#onBodyEnd = null;
    resolve?.();
  }

  #close(): void {
    this.#phase = 'closed';
    this.#socket.destroy();
  }

  #fail(e: Error): void {
    switch (this.#phase) {
      case 'idle': {
        const onClose = this.#onIdleClose;
        this.#onIdleClose = null;
        this.#close();
        return onClose?.();
      }
      case 'head': {
        const reject = this.#onFail!;
        this.#onHead = null;
        this.#onFail = null;
        this.#close();
        if (this.#received === 0 && this.#served > 0 && !(e instanceof BackendError)) return reject(new StaleConnection(e.message));
        return reject(e instanceof BackendError ? e : new BackendError('unreachable', e.message, e));
      }
      case 'held':
        this.#broken = this.#framing.kind !== 'none';
        this.#reusable = false;
        if (this.#broken) this.#close();
        return;
      case 'body':
        // The end of a body read until close is its completion.
        if (this.#framing.kind === 'close' && !(e instanceof BackendError)) {
          this.#reusable = false;
          return this.#finish();
        }
        return this.#break();
      case 'ending':
        // The client went away before the last bytes were out.
        this.#reusable = false;
        if (this.#sink?.destroyed === true) this.#settle();
        return;
      default:
        this.#close();
    }
  }
}

/** How the body is delimited (RFC 9112 §6.3). */
function framing(method: string, status: number, transferCodings: string[], lengths: string[]): Framing {
  if (method === 'HEAD' || status === 204 || status === 304) return { kind: 'none' };
  if (transferCodings.length > 0) return transferCodings.at(-1) === 'chunked' ? { kind: 'chunked' } : { kind: 'close' };
  if (lengths.length > 0) {
    if (!lengths.every((v) => /^\d{1,15}$/.test(v) && v === lengths[0])) throw new BackendError('unreachable', 'invalid Content-Length');
    const remaining = Number(lengths[0]);
    return remaining === 0 ? { kind: 'none' } : { kind: 'length', remaining };
  }
  return { kind: 'close' };
}
