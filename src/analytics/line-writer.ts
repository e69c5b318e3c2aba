/**
 * The analytics feed's writer. Each line is encoded straight into a
 * preallocated buffer of shared memory; a full buffer (or whatever is there
 * after `maxDelayMs`) is handed to a thread of the writer's own, which
 * writes the batches one at a time, in order, each with synchronous
 * `write(2)`s until it is all written. Nothing is concatenated or copied,
 * per line or per batch; written buffers are used again.
 *
 * One writer thread, for files, pipes, sockets and terminals alike (stdout
 * under systemd is a socket to journald):
 * - batches never overlap. Two writes at once to a pipe or socket whose
 *   reader is behind both wait in the kernel, which then takes parts of
 *   each: lines broke and batches changed order (tests: "a slow reader of
 *   a socket", "of a pipe"), when writes were libuv's thread pool's;
 * - the event loop never waits for the reader while the feed is less than
 *   `maxQueuedBytes` behind (test: "a reader that stops"). Written on the
 *   event loop, every request waited for a slow reader as soon as the
 *   kernel's buffer was full.
 *
 * Why not pino's destination (SonicBoom): it appends each line to a string
 * and measures the whole pending string (`Buffer.byteLength`) on every write,
 * which flattens it: ≈ 15 µs of CPU per request under load, more than the
 * gateway's routing and the socket write together (bench/results.md).
 *
 * Limits, so that a stuck sink cannot take the process down:
 * - the bytes handed to the thread and not yet written are bounded
 *   (`maxQueuedBytes`); past it, the event loop waits until the thread is
 *   back under it, which slows the gateway to the sink's pace rather than
 *   growing without end or dropping lines (counted: `blockingWrites`);
 * - a sink without room (a full pipe, EAGAIN; a full disk or quota, ENOSPC,
 *   EDQUOT) is tried again after a while, the lines waiting meanwhile, under
 *   the same bound; any other write error is fatal;
 * - several processes (`--workers`) share only regular files, opened with
 *   O_APPEND, where the kernel keeps each write whole; a write of more than
 *   PIPE_BUF bytes to a pipe is not atomic, so to anything else the primary
 *   writes for them (line-relay.ts).
 */
import { mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';

/** Sinks without room, by error code: how long to wait before trying again, in ms. */
const RETRY_MS: Readonly<Record<string, number>> = { EAGAIN: 10, ENOSPC: 1000, EDQUOT: 1000 };
/** While the event loop waits for room, it takes the thread's news (full, failed) this often, in ms. */
const WAIT_SLICE_MS = 100;
/**
 * Shared with the thread (Int32Array indices): bytes handed to it and not
 * yet written; the file descriptor to write; orders posted; batches written.
 */
const BACKLOG = 0;
const FD = 1;
const POSTED = 2;
const WRITTEN = 3;

/** To the thread, in order. */
type Order =
  /** `batch` is shared memory: the thread writes it, then counts it in WRITTEN. */
  | { readonly batch: SharedArrayBuffer; readonly length: number }
  /** `reopen` put another file descriptor in place: the old one can be closed. */
  | { readonly retired: number }
  /** Everything is written: close the destination when `closeFd`, say `ended` and stop. */
  | { readonly end: true; readonly closeFd: boolean };

/** From the thread. */
type News =
  /** The sink refuses writes for lack of room (its code), or takes them again (null). */
  | { readonly kind: 'full'; readonly code: string | null }
  | { readonly kind: 'failed'; readonly code: string; readonly message: string }
  | { readonly kind: 'ended' };

interface ThreadData {
  readonly port: MessagePort;
  readonly counters: Int32Array;
  readonly retryMs: Readonly<Record<string, number>>;
}

/**
 * The writer thread's whole code. It runs as its own script (its source,
 * types already stripped), so it uses nothing from this module. It has no
 * event loop to speak of: it sleeps in `Atomics.wait` until an order is
 * posted, and takes orders off its port synchronously (a thread woken
 * through its event loop for each batch cost the process about 10,000
 * instructions per request more, under callgrind).
 */
function writerThread(): void {
  // An evaluated worker is CommonJS or, under --input-type=module, a module: no `require`, no `import`.
  const { closeSync, writeSync } = process.getBuiltinModule('node:fs');
  const { receiveMessageOnPort, workerData } = process.getBuiltinModule('node:worker_threads');
  const { port, counters, retryMs } = workerData as ThreadData;
  // The indices above.
  const [BACKLOG, FD, POSTED, WRITTEN] = [0, 1, 2, 3];
  let full: string | null = null;
  let failed = false;
  const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

  /** Writes all of `bytes`, waiting for room as long as it takes; throws when the sink fails for good. */
  function writeAll(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length; ) {
      try {
        // The file descriptor of the moment: a batch that waits for room goes to the file a `reopen` put in place.
        at += writeSync(Atomics.load(counters, FD), bytes, at);
        if (full !== null) port.postMessage({ kind: 'full', code: (full = null) });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? '';
        const wait = retryMs[code];
        if (wait === undefined) throw e;
        // A full pipe (EAGAIN) is ordinary backpressure, not news.
        if (code !== 'EAGAIN' && full === null) port.postMessage({ kind: 'full', code: (full = code) });
        sleep(wait);
      }
    }
  }

  /** Carries out one order; false after the last. */
  function take(order: Order): boolean {
    if ('batch' in order) {
      // After a failure, batches are dropped: the event loop, told, throws.
      if (!failed) writeAll(new Uint8Array(order.batch, 0, order.length));
    } else if ('retired' in order) {
      closeSync(order.retired);
    } else {
      if (order.closeFd) closeSync(Atomics.load(counters, FD));
      port.postMessage({ kind: 'ended' });
      return false;
    }
    return true;
  }

  for (let taken = 0, more = true; more; ) {
    Atomics.wait(counters, POSTED, taken);
    let message: { message: Order } | undefined;
    while (more && (message = receiveMessageOnPort(port)) !== undefined) {
      const order = message.message;
      taken++;
      try {
        more = take(order);
      } catch (e) {
        // Any error here is the sink's (EPIPE, EBADF, EIO), and fatal; the thread stays to count off what comes.
        failed = true;
        port.postMessage({ kind: 'failed', code: (e as NodeJS.ErrnoException).code ?? '', message: (e as Error).message });
      }
      if ('batch' in order) {
        Atomics.sub(counters, BACKLOG, order.length);
        Atomics.add(counters, WRITTEN, 1);
        Atomics.notify(counters, BACKLOG);
      }
    }
  }
}

export interface LineWriterOptions {
  /** Bytes gathered before a write; a batch is written earlier after `maxDelayMs`. */
  readonly batchBytes?: number;
  readonly maxDelayMs?: number;
  /** Bytes handed to the writer thread and not yet written, past which the event loop waits for it. */
  readonly maxQueuedBytes?: number;
  /** Told when the sink starts refusing writes for lack of room (ENOSPC, EDQUOT: its code), and when it takes them again (null). */
  readonly onFull?: (code: string | null) => void;
}

export class LineWriter {
  /** The file it appends to, when it was given a path (`reopen` opens it again). */
  readonly #path: string | null;
  readonly #batchBytes: number;
  readonly #maxQueuedBytes: number;
  readonly #timer: NodeJS.Timeout;
  #buffer: Buffer;
  #used = 0;
  readonly #counters = new Int32Array(new SharedArrayBuffer(16));
  /** Ref'd while batches are on their way, which keeps the process alive until they are written. */
  readonly #port: MessagePort;
  #posted = 0;
  /** Batches handed to the thread, in order, until it has written them; `#reclaimed` of those sent so far are back. */
  readonly #sent: Buffer[] = [];
  #reclaimed = 0;
  /** Full-size batch buffers the thread has written. */
  readonly #spare: Buffer[] = [];
  #full: string | null = null;
  readonly #onFull: (code: string | null) => void;
  #ended: (() => void) | null = null;
  #blockingWrites = 0;

  /** `destination`: a file descriptor (1 = stdout) or a file path to append to. */
  constructor(destination: number | string, options: LineWriterOptions = {}) {
    this.#path = typeof destination === 'number' ? null : destination;
    this.#batchBytes = options.batchBytes ?? 64 * 1024;
    this.#maxQueuedBytes = options.maxQueuedBytes ?? 32 * 1024 * 1024;
    this.#onFull = options.onFull ?? (() => undefined);
    this.#buffer = shared(this.#batchBytes);
    const { port1, port2 } = new MessageChannel();
    Atomics.store(this.#counters, FD, typeof destination === 'number' ? destination : openAppend(destination));
    const data: ThreadData = { port: port2, counters: this.#counters, retryMs: RETRY_MS };
    // The thread closes file descriptors this thread opened: not its own to track (node warns then).
    const thread = new Worker(`(${writerThread.toString()})()`, { eval: true, workerData: data, transferList: [port2], trackUnmanagedFds: false });
    // Its own thread never keeps the process alive: the port does, while batches are pending.
    thread.unref();
    this.#port = port1;
    this.#port.on('message', (news: News) => this.#news(news));
    this.#port.unref();
    this.#timer = setInterval(() => {
      this.#seal();
      if (Atomics.load(this.#counters, BACKLOG) === 0) this.#port.unref();
    }, options.maxDelayMs ?? 100);
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
          const big = shared(bytes);
          big.write(line);
          this.#send(big, bytes);
          return;
        }
      }
    }
    this.#used += this.#buffer.write(line, this.#used);
    if (this.#used >= this.#buffer.length - 256) this.#seal();
  }

  /**
   * Opens its file again, by path, after a rotation renamed it: every
   * line not yet written goes to the new file, those waiting for room
   * included; a write(2) under way finishes in the old one, which the
   * thread then closes. False when the destination was given as a file
   * descriptor.
   */
  reopen(): boolean {
    if (this.#path === null) return false;
    const retired = Atomics.exchange(this.#counters, FD, openAppend(this.#path));
    // Closed by the thread after the batch it may be writing to it.
    this.#post({ retired });
    return true;
  }

  /** How often requests waited for the sink: the feed was `maxQueuedBytes` behind. */
  get blockingWrites(): number {
    return this.#blockingWrites;
  }

  /** Whether the sink refuses writes for lack of room (ENOSPC, EDQUOT) until a write goes through. */
  get full(): boolean {
    return this.#full !== null;
  }

  /**
   * For a process about to end on an error it did not expect: hands the
   * current batch to the thread and blocks until everything is written, at
   * most `timeoutMs`. True when it all was.
   */
  flushSync(timeoutMs: number): boolean {
    this.#seal();
    const deadline = performance.now() + timeoutMs;
    for (let backlog = Atomics.load(this.#counters, BACKLOG); backlog > 0; backlog = Atomics.load(this.#counters, BACKLOG)) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.#counters, BACKLOG, backlog, left);
    }
    return true;
  }

  /** Resolves once every line is written (and a file it opened is closed). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.#seal();
    this.#port.ref();
    await new Promise<void>((resolve) => {
      this.#ended = resolve;
      this.#post({ end: true, closeFd: this.#path !== null });
    });
    this.#port.close();
  }

  /** Ends the current batch and hands it to the thread. */
  #seal(): void {
    if (this.#used === 0) return;
    const batch = this.#buffer;
    const length = this.#used;
    this.#reclaim();
    this.#buffer = this.#spare.pop() ?? shared(this.#batchBytes);
    this.#used = 0;
    this.#send(batch, length);
  }

  /** `batch`: a Buffer over the whole of a SharedArrayBuffer, not to be touched until the thread has written it. */
  #send(batch: Buffer, length: number): void {
    const backlog = Atomics.add(this.#counters, BACKLOG, length) + length;
    this.#port.ref();
    this.#sent.push(batch);
    this.#post({ batch: batch.buffer as SharedArrayBuffer, length });
    if (backlog > this.#maxQueuedBytes) this.#waitForRoom();
  }

  /** Orders go through the port; the count wakes the thread. */
  #post(order: Order): void {
    this.#port.postMessage(order);
    Atomics.store(this.#counters, POSTED, ++this.#posted);
    Atomics.notify(this.#counters, POSTED);
  }

  /** Batches the thread has written (it writes them in order) are free again; a few full-size ones are kept. */
  #reclaim(): void {
    for (const written = Atomics.load(this.#counters, WRITTEN); this.#reclaimed < written; this.#reclaimed++) {
      const batch = this.#sent.shift()!;
      if (batch.length === this.#batchBytes && this.#spare.length < 4) this.#spare.push(batch);
    }
  }

  /** The sink is not keeping up: waits, blocking the event loop, until the thread is back under the bound. */
  #waitForRoom(): void {
    this.#blockingWrites++;
    for (;;) {
      const backlog = Atomics.load(this.#counters, BACKLOG);
      if (backlog <= this.#maxQueuedBytes) return;
      Atomics.wait(this.#counters, BACKLOG, backlog, WAIT_SLICE_MS);
      // What the thread said meanwhile: that the sink is full (told at once), or failed (thrown).
      let message: { message: News } | undefined;
      while ((message = receiveMessageOnPort(this.#port)) !== undefined) this.#news(message.message);
    }
  }

  #news(news: News): void {
    switch (news.kind) {
      case 'full':
        // The thread tells changes only.
        this.#full = news.code;
        this.#onFull(news.code);
        return;
      case 'failed':
        // A sink that fails for good (EPIPE, EBADF, EIO): the feed is the
        // product, so this is fatal, as an unhandled stream error is.
        throw Object.assign(new Error(`analytics feed: ${news.message}`), { code: news.code });
      case 'ended':
        this.#ended?.();
        return;
    }
  }
}

/** A Buffer over shared memory, which the thread reads without a copy. */
function shared(bytes: number): Buffer {
  return Buffer.from(new SharedArrayBuffer(bytes));
}

function openAppend(file: string): number {
  makeDirectory(dirname(file));
  return openSync(file, 'a');
}

/**
 * `mkdir -p`. Not node's `mkdirSync(dir, { recursive: true })`: it never
 * returns where mkdir(2) says ENOENT under a parent that exists, as in
 * /proc, and then not even SIGTERM stops the process.
 */
function makeDirectory(dir: string): void {
  if (mkdirOnce(dir) === undefined || dirname(dir) === dir) return;
  makeDirectory(dirname(dir));
  const missing = mkdirOnce(dir);
  if (missing) throw missing;
}

/** Made or there already: undefined. A parent missing: the ENOENT error. Others are thrown. */
function mkdirOnce(dir: string): NodeJS.ErrnoException | undefined {
  try {
    mkdirSync(dir);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return error as NodeJS.ErrnoException;
    if (code !== 'EEXIST') throw error;
  }
  return undefined;
}
