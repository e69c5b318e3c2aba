/**
 * One kept-alive connection to a backend, and the answer in flight on it.
 *
 * It reads into buffers of its own, reused for its whole life (`onread`),
 * and a body goes to the client straight from them, so nothing is copied
 * or allocated per read. node:http's client allocates a fresh 64 KiB
 * buffer for every read instead; a 1 GiB blob then set off some 40 full
 * garbage collections, each marking the whole routing table
 * (bench/results.md, proxy-blob). The reads of one turn of the event loop
 * go on one after the other in a buffer and are written to the client
 * together; then the connection stops reading until the client's socket
 * has taken them. Over TLS a read is one record (16 KiB at most): writing
 * each record alone took about a fifth more CPU per GiB.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsOptions } from 'node:tls';
import type { ServerResponse } from 'node:http';
import { cutOff, SendDeadline } from '../http/send-slices.ts';
import { BackendError, ClientLeft, StaleConnection } from './backend-error.ts';
import { ChunkedDecoder, firstField, framing, HeadReader, keepsConnection, type Framing, type ResponseHead } from './http1-wire.ts';

/**
 * Bytes read at a time. A 1 GiB blob over loopback took 0.73 s of CPU with
 * 64 KiB reads, 0.52 s with 256 KiB and 0.39 s with 1 MiB. Pages of the
 * buffer are touched only by reads that fill them, so a connection that
 * only ever carried manifests holds a few KiB of it.
 */
const READ_SIZE = 256 * 1024;
/** Bytes read at a time once the read budget is spent: one TLS record. */
const SMALL_READ_SIZE = 16 * 1024;
/** A parked connection is closed after this long, before most servers do (5 s and up). */
const IDLE_MS = 4000;

export interface ConnectionOptions {
  /** Time to open a connection, in ms. */
  readonly connectTimeout: number;
  /** Time the backend may stay silent: before the head, and between reads of the body, in ms. */
  readonly silenceTimeout: number;
  /** Where the connections' read buffers come from. */
  readonly readBudget: ReadBudget;
  /** Time a write of the body may wait for the client to take its bytes, in ms; past it the client's response is cut off. */
  readonly sendTimeout: number;
  /** Called when a client is cut off for it (metrics). */
  readonly onSendTimeout?: () => void;
}

/** A backend's answer: its head, then its body, taken once. */
export interface BackendAnswer {
  readonly status: number;
  /** Header fields in the order received: name (lower case), value, name, value, ... */
  readonly fields: readonly string[];
  /** The first value of a field, or undefined. */
  field(name: string): string | undefined;
  /**
   * Writes the body to `res` and ends it; resolves when the body is
   * complete or broken (then `res` is destroyed), with the backend's
   * failure that broke it, or null (complete, or the client left or took
   * nothing for the send timeout).
   */
  pipeTo(res: ServerResponse): Promise<BackendError | null>;
  /** Drops the body; the connection is kept when it ends cleanly. Once the body is taken, does nothing. */
  discard(): void;
}

/**
 * Where a connection is: opening; waiting for an answer's head; holding the
 * head's first body bytes until the caller takes the body; reading the
 * body; ending the client's response; parked in the pool; closed.
 */
type Phase = 'opening' | 'head' | 'held' | 'body' | 'ending' | 'idle' | 'closed';

/** A request waiting for its answer's head. */
interface Waiting {
  resolve(answer: BackendAnswer): void;
  reject(e: Error): void;
  /** Stops listening for the client's leaving. */
  unlisten(): void;
}

/** One connection to a backend and the parse state of the answer in flight. */
export class Connection {
  readonly #socket: Socket;
  readonly #buffers: ReadBuffers;
  readonly #options: ConnectionOptions;
  readonly #release: (c: Connection) => void;
  #phase: Phase = 'opening';
  /** Answers completed on this connection. */
  #served = 0;
  /** Bytes of the current answer seen so far. */
  #received = 0;
  #method = 'GET';
  /** Empty between answers: it starts over after each head, and a connection that failed mid-head is closed. */
  readonly #head = new HeadReader();
  #framing: Framing = { kind: 'none' };
  #chunked = new ChunkedDecoder();
  #reusable = true;
  /** The backend failed while the body was held: the caller's response is cut off when it takes it. */
  #broken: BackendError | null = null;
  /** Where the body goes; null drops it. */
  #sink: ServerResponse | null = null;
  /** Body bytes read before the caller took the body, in order; their buffers are lent until then. */
  #held: { buffer: Buffer; from: number; to: number }[] = [];
  /** The request waiting for its head, settled once: by the head, or by a failure (the client's leaving included). */
  #waiting: Waiting | null = null;
  #onBodyEnd: ((failure: BackendError | null) => void) | null = null;
  #onIdleClose: (() => void) | null = null;
  /** Body bytes read and not yet written to the client, adjacent ones joined. */
  #pieces: Buffer[] = [];
  /** The reads those bytes came in, each lent until they are out. */
  #batched: Buffer[] = [];
  /** The write of the batch at the end of this turn of the event loop. */
  #flushAt: NodeJS.Immediate | null = null;
  /** Writes to the client on their way. */
  #writes = 0;
  /** Cuts the client off when a write (or the end) waits past the send timeout: a client that stopped reading holds nothing for longer. */
  readonly #deadline: SendDeadline;

  private constructor(socket: Socket, buffers: ReadBuffers, options: ConnectionOptions, release: (c: Connection) => void) {
    this.#socket = socket;
    this.#buffers = buffers;
    this.#options = options;
    this.#release = release;
    this.#deadline = new SendDeadline(options.sendTimeout, () => {
      options.onSendTimeout?.();
      this.#break();
    });
    socket.on('error', (e) => this.#fail(e));
    socket.on('end', () => this.#fail(new Error('the backend closed the connection')));
    socket.on('close', () => this.#fail(new Error('connection closed')));
    socket.on('timeout', () => this.#fail(new BackendError('timeout', 'the backend stayed silent')));
  }

  /**
   * Opens a connection; `release` parks it for the next request once an
   * answer is complete and it may carry another. `signal` (the client left)
   * gives it up at once: ClientLeft, the socket closed.
   */
  static open(url: URL, options: ConnectionOptions, release: (c: Connection) => void, signal: AbortSignal): Promise<Connection> {
    const buffers = new ReadBuffers(options.readBudget);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    let connection: Connection | null = null;
    const onread = { buffer: buffers.next, callback: (n: number, buffer: Buffer) => connection!.read(n, buffer) };
    const socket =
      url.protocol === 'https:'
        ? // `onread` works for TLS too (node ≥ 15.1), though @types/node does not list it.
          tlsConnect({ host, port, servername: isIP(host) === 0 ? host : undefined, ALPNProtocols: ['http/1.1'], onread } as TlsOptions)
        : netConnect({ host, port, onread });
    connection = new Connection(socket, buffers, options, release);
    return new Promise((resolve, reject) => {
      const settle = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', left);
      };
      const giveUp = (e: Error): void => {
        settle();
        connection!.destroy();
        reject(e);
      };
      const timer = setTimeout(() => giveUp(new BackendError('timeout', 'the backend did not accept the connection in time')), options.connectTimeout);
      const left = (): void => giveUp(new ClientLeft());
      signal.addEventListener('abort', left, { once: true });
      const failed = (e: Error): void => giveUp(new BackendError('unreachable', e.message, e));
      socket.once('error', failed);
      socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
        settle();
        socket.off('error', failed);
        socket.setNoDelay(true);
        resolve(connection!);
      });
    });
  }

  /** Writes a request and resolves with the answer's head; `signal` gives it up (ClientLeft) until the head is in. */
  exchange(head: string, method: string, signal: AbortSignal): Promise<BackendAnswer> {
    this.#phase = 'head';
    this.#method = method;
    this.#received = 0;
    this.#broken = null;
    this.#sink = null;
    this.#held = [];
    return new Promise((resolve, reject) => {
      const left = () => this.#fail(new ClientLeft());
      this.#waiting = { resolve, reject, unlisten: () => signal.removeEventListener('abort', left) };
      if (signal.aborted) return left();
      signal.addEventListener('abort', left, { once: true });
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

  /** Parked and still open: it can carry a request. */
  get usable(): boolean {
    return this.#phase === 'idle' && !this.#socket.destroyed;
  }

  wake(): void {
    this.#onIdleClose = null;
    this.#socket.setTimeout(0);
  }

  destroy(): void {
    this.#close();
  }

  /** onread: `n` new bytes at the start of `buffer`. Returns false to stop reading. */
  read(n: number, buffer: Buffer): boolean {
    if (this.#phase === 'held') {
      // Read although reading was stopped (TLS decrypts what it has): kept for the taker.
      this.#hold(buffer, 0, n);
      return false;
    }
    if (this.#phase !== 'head' && this.#phase !== 'body') {
      // Bytes nobody asked for: the connection cannot be trusted.
      this.#fail(new BackendError('unreachable', 'unexpected bytes from the backend'));
      return false;
    }
    this.#received += n;
    try {
      if (this.#phase === 'head') {
        const read = this.#head.read(buffer, 0, n);
        if (read === null) return true;
        // The caller decides what becomes of the body; until then, stop.
        this.#stop();
        this.#answer(read.head);
        if (read.bodyAt < n) this.#hold(buffer, read.bodyAt, n);
        return false;
      }
      return this.#readBody(buffer, 0, n);
    } catch (e) {
      this.#fail(e as Error);
      return false;
    }
  }

  #hold(buffer: Buffer, from: number, to: number): void {
    this.#buffers.lend(buffer);
    this.#held.push({ buffer, from, to });
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

  /** The waiting request, no longer waited on nor listening for its client. */
  #stopWaiting(): Waiting {
    const waiting = this.#waiting!;
    this.#waiting = null;
    waiting.unlisten();
    return waiting;
  }

  /** The final head: settles the head promise. */
  #answer(head: ResponseHead): void {
    this.#framing = framing(this.#method, head);
    this.#reusable = keepsConnection(head, this.#framing);
    this.#chunked = new ChunkedDecoder();
    this.#phase = 'held';
    const { status, fields } = head;
    this.#stopWaiting().resolve({ status, fields, field: (name) => firstField(fields, name), pipeTo: (res) => this.#take(res), discard: () => void this.#take(null) });
  }

  /** The caller takes the body: go on with the bytes held since the head. */
  #take(sink: ServerResponse | null): Promise<BackendError | null> {
    if (this.#phase !== 'held') return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#sink = sink;
      this.#onBodyEnd = resolve;
      sink?.once('close', () => {
        if (this.#sink === sink && (this.#phase === 'body' || this.#phase === 'ending')) this.#break();
      });
      const held = this.#held;
      this.#held = [];
      // A client that left while the head was on its way does not get the body read for it.
      if (this.#broken !== null || sink?.destroyed === true) {
        for (const h of held) this.#buffers.giveBack(h.buffer);
        return this.#break(this.#broken);
      }
      this.#phase = 'body';
      if (this.#framing.kind === 'none') {
        // Bytes after a head that has no body: the backend cannot be trusted with the next request.
        if (held.length > 0) this.#reusable = false;
        for (const h of held) this.#buffers.giveBack(h.buffer);
        return this.#finish();
      }
      let more = true;
      try {
        for (const h of held) {
          if (this.#phase === 'body') {
            more = this.#readBody(h.buffer, h.from, h.to);
            this.#buffers.giveBack(h.buffer);
          } else {
            // Bytes after the body's end.
            this.#reusable = false;
            this.#buffers.giveBack(h.buffer);
          }
        }
      } catch (e) {
        // A malformed body: cut off, connection closed.
        return this.#fail(e as Error);
      }
      // The bytes held since the head go out at once: they are in a buffer the next read will not go on in.
      this.#flush();
      if (more && this.#writes === 0) this.#go();
    });
  }

  /**
   * Adds the body bytes in [from, to) of `buffer` to those written to the
   * sink together (`#flush`); they are lent until they are out. Returns
   * false to stop reading.
   */
  #readBody(buffer: Buffer, from: number, to: number): boolean {
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
      at = this.#chunked.decode(buffer, at, to, pieces);
      complete = this.#chunked.done;
    }
    if (complete && at < to) this.#reusable = false;
    const sink = this.#sink;
    if (sink !== null && !sink.destroyed && pieces.length > 0) {
      // These bytes are not read over until they are out.
      this.#buffers.lend(buffer, to);
      this.#batched.push(buffer);
      for (let i = 0; i < pieces.length; i += 2) this.#batch(buffer.subarray(pieces[i], pieces[i + 1]));
    }
    if (complete) {
      this.#finish();
      return false;
    }
    // Nothing to write (dropped, or framing only): read on.
    if (this.#batched.length === 0) return true;
    if (!this.#buffers.roomy) {
      this.#flush();
      return false;
    }
    // The reads of this turn of the event loop go out together.
    this.#flushAt ??= setImmediate(() => this.#flush());
    if (this.#writes === 0) return true;
    this.#stop();
    return false;
  }

  /** Adds `piece` to the bytes the next flush writes, after the last one when they are adjacent. */
  #batch(piece: Buffer): void {
    const last = this.#pieces.at(-1);
    if (last !== undefined && last.buffer === piece.buffer && last.byteOffset + last.length === piece.byteOffset) {
      this.#pieces[this.#pieces.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + piece.length);
    } else this.#pieces.push(piece);
  }

  /** Writes the batched bytes to the client in one go, and reads no further until they are out. */
  #flush(): void {
    if (this.#flushAt !== null) clearImmediate(this.#flushAt);
    this.#flushAt = null;
    const pieces = this.#pieces;
    const lent = this.#batched;
    if (lent.length === 0) return;
    this.#pieces = [];
    this.#batched = [];
    const sink = this.#sink!;
    if (sink.socket?.destroyed === true) {
      // The client left, and its response's 'close' comes next (it breaks the
      // body off): node:http would drop this write and its callback.
      for (const b of lent) this.#buffers.giveBack(b);
      return;
    }
    this.#writes++;
    this.#stop();
    this.#deadline.wait();
    if (pieces.length > 1) sink.cork();
    for (let i = 0; i < pieces.length; i++) {
      if (i + 1 < pieces.length) sink.write(pieces[i]);
      else
        sink.write(pieces[i], () => {
          for (const b of lent) this.#buffers.giveBack(b);
          if (--this.#writes === 0) {
            this.#deadline.taken();
            this.#go();
          }
        });
    }
    if (pieces.length > 1) sink.uncork();
  }

  /**
   * The body is complete: what is batched goes out, and the client's
   * response ends. The connection goes back to the pool only once the
   * response is out, since its last bytes may still be in the buffer.
   */
  #finish(): void {
    // Over TLS a close can come in the same turn of the event loop as the last reads, before their batch is written.
    this.#flush();
    this.#phase = 'ending';
    this.#socket.setTimeout(0);
    const sink = this.#sink;
    if (sink === null || sink.destroyed) return this.#settle();
    this.#deadline.wait();
    sink.end(() => {
      this.#deadline.taken();
      if (this.#phase === 'ending') this.#settle();
    });
  }

  #settle(): void {
    this.#served++;
    const resolve = this.#onBodyEnd;
    this.#onBodyEnd = null;
    // A write whose callback never came (a client that left) would hold the
    // next answer on this connection up for good: it goes on only once the
    // writes in flight are out.
    if (this.#reusable && this.#writes === 0) this.#release(this);
    else this.#close();
    resolve?.(null);
  }

  /** The body cannot complete (`failure`: the backend's doing): the client's response is cut off, the connection closed. */
  #break(failure: BackendError | null = null): void {
    this.#close();
    if (this.#sink !== null) cutOff(this.#sink);
    const resolve = this.#onBodyEnd;
    this.#onBodyEnd = null;
    resolve?.(failure);
  }

  #close(): void {
    this.#phase = 'closed';
    this.#deadline.stop();
    this.#socket.destroy();
    if (this.#flushAt !== null) clearImmediate(this.#flushAt);
    this.#flushAt = null;
    for (const b of this.#batched) this.#buffers.giveBack(b);
    this.#pieces = [];
    this.#batched = [];
    this.#buffers.close();
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
        const { reject } = this.#stopWaiting();
        this.#close();
        if (e instanceof ClientLeft) return reject(e);
        if (this.#received === 0 && this.#served > 0 && !(e instanceof BackendError)) return reject(new StaleConnection(e.message));
        return reject(asBackendError(e));
      }
      case 'held':
        // Still 'held': the caller takes the body next, and is told then.
        if (this.#framing.kind !== 'none') this.#broken = asBackendError(e);
        this.#reusable = false;
        this.#socket.destroy();
        return;
      case 'body':
        // The end of a body read until close is its completion.
        if (this.#framing.kind === 'close' && !(e instanceof BackendError)) {
          this.#reusable = false;
          return this.#finish();
        }
        return this.#break(asBackendError(e));
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

/** A failure on a connection, as the backend's. */
function asBackendError(e: Error): BackendError {
  return e instanceof BackendError ? e : new BackendError('unreachable', e.message, e);
}

/**
 * The read buffers of all connections to backends, against a budget of
 * bytes: while it lasts a buffer holds READ_SIZE bytes, then
 * SMALL_READ_SIZE. A proxied body holds two or three (ReadBuffers), and
 * a client that stops reading keeps them full; without a bound, a few
 * thousand such clients (well within the file descriptors node allows
 * itself) would hold gigabytes. Past the budget a request holds about
 * what node:http's client would, and the budget is back once connections
 * close.
 */
export class ReadBudget {
  readonly #max: number;
  #held = 0;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  /** Bytes of read buffers held now, large and small. */
  get held(): number {
    return this.#held;
  }

  take(): Buffer {
    const size = this.#held + READ_SIZE <= this.#max ? READ_SIZE : SMALL_READ_SIZE;
    this.#held += size;
    return Buffer.allocUnsafe(size);
  }

  /** `buffer` is no longer used. */
  drop(buffer: Buffer): void {
    this.#held -= buffer.length;
  }
}

/**
 * A connection's read buffers: the socket reads into what `next` gives,
 * the free part of the buffer in use (after the bytes still to be written
 * to the client) while at least a TLS record fits, else another buffer.
 * Bytes lent to writes are not read over until they are done, and a
 * buffer is free again once all its bytes are out. node asks for the next
 * read's buffer as soon as a read is done, so a body whose buffer is full
 * while its bytes go out takes a second. Over TLS node also goes on
 * decrypting the records it already has after reading was stopped
 * (tls_wrap's ClearOut loop), into the free part or a third.
 */
export class ReadBuffers {
  /** Spare buffers kept beyond the one in use. */
  static readonly SPARE = 2;
  readonly #budget: ReadBudget;
  readonly #spare: Buffer[] = [];
  /** Buffers holding bytes still to be written, by their memory, and how many reads' bytes each holds. */
  readonly #lent = new Map<ArrayBufferLike, { buffer: Buffer; reads: number }>();
  #current: Buffer | null = null;
  /** Where the free part of `#current` begins. */
  #tail = 0;
  #closed = false;

  constructor(budget: ReadBudget) {
    this.#budget = budget;
  }

  /** Whether the next read goes on in the buffer in use. */
  get roomy(): boolean {
    return this.#current !== null && this.#current.length - this.#tail >= SMALL_READ_SIZE;
  }

  /** onread.buffer, asked before each read: the free part of the buffer in use, or another buffer. */
  readonly next = (): Buffer => {
    // Closed: a read node may still make goes nowhere that counts.
    if (this.#closed) return Buffer.allocUnsafe(SMALL_READ_SIZE);
    if (this.#current !== null) {
      // `#tail` is 0 whenever none of the buffer's bytes are lent (giveBack).
      if (this.#tail === 0) return this.#current;
      if (this.roomy) return this.#current.subarray(this.#tail);
    }
    this.#tail = 0;
    return (this.#current = this.#spare.pop() ?? this.#budget.take());
  };

  /** `view`'s bytes up to `end` are not read over until it is given back. */
  lend(view: Buffer, end = view.length): void {
    const lent = this.#lent.get(view.buffer);
    if (lent !== undefined) lent.reads++;
    // Lent for the first time as it is read: it is in the buffer in use.
    else this.#lent.set(view.buffer, { buffer: this.#current!, reads: 1 });
    if (this.#current !== null && view.buffer === this.#current.buffer) {
      this.#tail = Math.max(this.#tail, view.byteOffset - this.#current.byteOffset + end);
    }
  }

  giveBack(view: Buffer): void {
    const lent = this.#lent.get(view.buffer);
    if (lent === undefined || --lent.reads > 0) return;
    this.#lent.delete(view.buffer);
    const buffer = lent.buffer;
    if (buffer === this.#current) {
      this.#tail = 0;
      return;
    }
    if (this.#spare.length < ReadBuffers.SPARE) this.#spare.push(buffer);
    else this.#budget.drop(buffer);
  }

  /**
   * The connection is closed: all its buffers go back to the budget, lent
   * ones too, and giving one back later changes nothing. Nothing reads
   * into them any more, and a close leaves no write to a client on its
   * way but to one whose response is destroyed (Connection's #break), whose
   * write callbacks node:http may never call: one made after the client's
   * socket is destroyed and before its 'close' event is dropped.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const buffer of this.#spare) this.#budget.drop(buffer);
    this.#spare.length = 0;
    if (this.#current !== null && !this.#lent.has(this.#current.buffer)) this.#budget.drop(this.#current);
    this.#current = null;
    for (const { buffer } of this.#lent.values()) this.#budget.drop(buffer);
    this.#lent.clear();
  }
}
