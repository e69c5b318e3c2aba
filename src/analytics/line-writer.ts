/**
 * The analytics feed's writer. Each line is encoded straight into a
 * preallocated buffer; a full buffer (or whatever is there after
 * `maxDelayMs`) is handed to one asynchronous `write(2)`, one in flight at a
 * time, in order. Nothing is concatenated or copied per line.
 *
 * A pipe, a socket or a terminal (stdout under systemd is a socket to
 * journald) is written synchronously instead, batch by batch, as node
 * writes `process.stdout` to them on Linux. An asynchronous write to one
 * can wait in the kernel for the reader, and the synchronous writes that
 * the bound below then starts went in beside it: sockets and pipes took
 * parts of both, which broke lines and put batches out of order (tests:
 * "a slow reader of a socket", "of a pipe"). Written on the event loop, a
 * batch waits for the reader's room, and requests with it: the kernel's
 * buffer is the only cushion. Waits over `BLOCKED_MS` are counted.
 *
 * Why not pino's destination (SonicBoom): it appends each line to a string
 * and measures the whole pending string (`Buffer.byteLength`) on every write,
 * which flattens it: ≈ 15 µs of CPU per request under load, more than the
 * gateway's routing and the socket write together (bench/results.md).
 *
 * Limits, so that a stuck sink cannot take the process down:
 * - lines waiting behind the write in flight are bounded (`maxQueuedBytes`);
 *   past it, the queue is written synchronously, which slows the gateway to
 *   the sink's pace rather than growing without end or dropping lines;
 * - a sink without room (a full pipe, EAGAIN; a full disk or quota, ENOSPC,
 *   EDQUOT) is tried again after a while, the lines waiting meanwhile, under
 *   the same bound; any other write error is fatal;
 * - several processes (`--workers`) share only regular files, opened with
 *   O_APPEND, where the kernel keeps each write whole; a write of more than
 *   PIPE_BUF bytes to a pipe is not atomic, so to anything else the primary
 *   writes for them (line-relay.ts).
 */
import { closeSync, fstatSync, mkdirSync, openSync, write, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isatty } from 'node:tty';

/** Sinks without room, by error code: how long to wait before trying again, in ms. */
const RETRY_MS: Readonly<Record<string, number>> = { EAGAIN: 10, ENOSPC: 1000, EDQUOT: 1000 };
/** The longest synchronous wait between two tries, when writes have turned synchronous. */
const SYNC_RETRY_MS = 100;
/** A synchronous write to a pipe or socket that took longer waited for its reader (a 64 KiB batch takes tens of µs). */
const BLOCKED_MS = 10;

/** Whether `fd` is written synchronously: a pipe, a socket or a terminal. */
function writtenInOrder(fd: number): boolean {
  const s = fstatSync(fd);
  return s.isFIFO() || s.isSocket() || isatty(fd);
}

export interface LineWriterOptions {
  /** Bytes gathered before a write; a batch is written earlier after `maxDelayMs`. */
  readonly batchBytes?: number;
  readonly maxDelayMs?: number;
  /** Bytes waiting behind the write in flight before writes turn synchronous. */
  readonly maxQueuedBytes?: number;
  /** Told when the sink starts refusing writes for lack of room (ENOSPC, EDQUOT: its code), and when it takes them again (null). */
  readonly onFull?: (code: string | null) => void;
}

export class LineWriter {
  #fd: number;
  /** Every batch is written synchronously, on the event loop (a pipe, a socket, a terminal). */
  #sync: boolean;
  /** The file it appends to, when it was given a path (`reopen` opens it again). */
  readonly #path: string | null;
  /** A file descriptor replaced by `reopen`, closed once the write in flight on it is done. */
  #retired: number | null = null;
  readonly #batchBytes: number;
  readonly #maxQueuedBytes: number;
  readonly #timer: NodeJS.Timeout;
  #buffer: Buffer;
  #used = 0;
  /** Sealed batches in order; the first one is being written when `#writing`. */
  readonly #queue: Buffer[] = [];
  #queuedBytes = 0;
  #writing = false;
  /** The sink had no room for the first batch: the timer that tries again. `#writing` stays true meanwhile. */
  #retry: NodeJS.Timeout | null = null;
  /** The error code of a sink without room, until a write goes through. */
  #full: string | null = null;
  readonly #onFull: (code: string | null) => void;
  /** Full-size buffers given back by finished writes. */
  readonly #spare: Buffer[] = [];
  #drained: (() => void) | null = null;
  #blockingWrites = 0;

  /** `destination`: a file descriptor (1 = stdout) or a file path to append to. */
  constructor(destination: number | string, options: LineWriterOptions = {}) {
    this.#path = typeof destination === 'number' ? null : destination;
    this.#fd = typeof destination === 'number' ? destination : openAppend(destination);
    this.#sync = writtenInOrder(this.#fd);
    this.#batchBytes = options.batchBytes ?? 64 * 1024;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 32 * 1024 * 1024;
    this.#onFull = options.onFull ?? (() => undefined);
    this.#buffer = Buffer.allocUnsafeSlow(this.#batchBytes);
    this.#timer = setInterval(() => this.#seal(), options.maxDelayMs ?? 100);
    this.#timer.unref();
  }

  /** Hot path. `line` ends with its newline. */
  write(line: string): void {
    // A UTF-16 unit takes at most 3 bytes in UTF-8: measure only when it might not fit.
    const room = this.#buffer.length - this.#used;
    if (line.length * 3 > room) {
      const bytes = Buffer.byteLength(line);
      if (bytes > room) {
        this.#seal();
        if (bytes > this.#buffer.length) {
          this.#enqueue(Buffer.from(line));
          return;
        }
      }
    }
    this.#used += this.#buffer.write(line, this.#used);
    if (this.#used >= this.#buffer.length - 256) this.#seal();
  }

  /**
   * Opens its file again, by path, after a rotation renamed it: what is
   * written from now on, lines still buffered included, goes to the new
   * file; the write in flight finishes in the old one. False when the
   * destination was given as a file descriptor.
   */
  reopen(): boolean {
    if (this.#path === null) return false;
    const old = this.#fd;
    this.#fd = openAppend(this.#path);
    this.#sync = writtenInOrder(this.#fd);
    // The write in flight uses the oldest descriptor: keep that one open until it is done.
    if (this.#writing && this.#retired === null) this.#retired = old;
    else closeSync(old);
    return true;
  }

  /** How often requests waited for the sink: a file fell `maxQueuedBytes` behind, or a pipe, socket or terminal took over BLOCKED_MS to take a batch. */
  get blockingWrites(): number {
    return this.#blockingWrites;
  }

  /** Whether the sink refuses writes for lack of room (ENOSPC, EDQUOT) until a write goes through. */
  get full(): boolean {
    return this.#full !== null;
  }

  /** Waits for the write in flight, then writes everything left synchronously. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#seal();
    if (this.#writing) await new Promise<void>((resolve) => (this.#drained = resolve));
    this.#writeAllSync();
    if (this.#path !== null) closeSync(this.#fd);
  }

  /** Ends the current batch and starts writing it. */
  #seal(): void {
    if (this.#used === 0) return;
    const batch = this.#buffer.subarray(0, this.#used);
    this.#buffer = this.#spare.pop() ?? Buffer.allocUnsafeSlow(this.#batchBytes);
    this.#used = 0;
    this.#enqueue(batch);
  }

  #enqueue(batch: Buffer): void {
    this.#queue.push(batch);
    this.#queuedBytes += batch.length;
    if (this.#queuedBytes > this.#maxQueuedBytes && this.#writing) {
      // The sink is not keeping up: what waits is written now, in order,
      // blocking until the sink takes it.
      this.#blockingWrites++;
      if (this.#retry !== null) {
        // Waiting to try the first batch again: no write is in flight, so all of it goes, the first batch first.
        clearTimeout(this.#retry);
        this.#retry = null;
        this.#writing = false;
      }
      // Else everything behind the write in flight. Should that write then
      // fail for lack of room, its batch lands after these: the one case
      // where batches change order (it needs 32 MiB queued during one write).
      this.#writeQueued();
      return;
    }
    this.#next();
  }

  #next(): void {
    // In order, now: the queue is then empty, but for a write in flight to a file `reopen` replaced.
    if (this.#sync) this.#writeInOrder();
    if (this.#writing) return;
    const batch = this.#queue[0];
    if (batch === undefined) {
      this.#drained?.();
      this.#drained = null;
      return;
    }
    this.#writing = true;
    write(this.#fd, batch, 0, batch.length, null, (error, written) => {
      this.#writing = false;
      if (this.#retired !== null) {
        closeSync(this.#retired);
        this.#retired = null;
      }
      if (error !== null) {
        const wait = RETRY_MS[error.code ?? ''];
        // A sink that fails for good (EPIPE, EBADF, EIO): the feed is the
        // product, so this is fatal, as an unhandled stream error is.
        if (wait === undefined) throw error;
        this.#refused(error.code!);
        this.#writing = true;
        this.#retry = setTimeout(() => {
          this.#retry = null;
          this.#writing = false;
          this.#next();
        }, wait);
        return;
      }
      this.#accepted();
      this.#done(batch, written);
      this.#next();
    });
  }

  /** `written` bytes of the first batch reached the sink. */
  #done(batch: Buffer, written: number): void {
    this.#queuedBytes -= written;
    if (written < batch.length) {
      this.#queue[0] = batch.subarray(written);
      return;
    }
    this.#queue.shift();
    if (batch.byteOffset === 0 && batch.buffer.byteLength === this.#batchBytes && this.#spare.length < 4) {
      this.#spare.push(Buffer.from(batch.buffer, 0, this.#batchBytes));
    }
  }

  /** A pipe, socket or terminal: everything queued, now, on the event loop; a wait for the reader is counted. */
  #writeInOrder(): void {
    const start = performance.now();
    this.#writeQueued();
    if (performance.now() - start > BLOCKED_MS) this.#blockingWrites++;
  }

  /** Writes everything queued now, but the batch of a write in flight, which stays first in the queue for its callback. */
  #writeQueued(): void {
    const inFlight = this.#writing ? this.#queue.shift() : undefined;
    this.#writeAllSync();
    if (inFlight !== undefined) this.#queue.unshift(inFlight);
  }

  #writeAllSync(): void {
    let batch: Buffer | undefined;
    while ((batch = this.#queue[0]) !== undefined) {
      try {
        this.#done(batch, writeSync(this.#fd, batch));
        this.#accepted();
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? '';
        const wait = RETRY_MS[code];
        if (wait === undefined) throw error;
        this.#refused(code);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.min(wait, SYNC_RETRY_MS));
      }
    }
  }

  /** The sink refused a write for lack of room; a full pipe (EAGAIN) is ordinary backpressure, not told. */
  #refused(code: string): void {
    if (code === 'EAGAIN' || this.#full !== null) return;
    this.#full = code;
    this.#onFull(code);
  }

  /** A write went through. */
  #accepted(): void {
    if (this.#full === null) return;
    this.#full = null;
    this.#onFull(null);
  }
}

function openAppend(file: string): number {
  mkdirSync(dirname(file), { recursive: true });
  return openSync(file, 'a');
}
