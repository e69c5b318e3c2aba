/**
 * Large bodies made once and sent to many clients (big Python index pages,
 * npm package documents): each answer writes slices of the one shared
 * Buffer, the next once the client took the last. A client that stops
 * reading holds a slice, never a copy, and is cut off once a write has
 * waited `--send-timeout` (nginx's `send_timeout`), instead of keeping its
 * connection for as long as it likes. The registry proxy's relay uses the
 * same deadline, and every answer cut off midway goes through `cutOff`.
 */
import type { ServerResponse } from 'node:http';

/** Bytes written at a time. */
const SLICE = 65536;

/**
 * The time a client has to take what was written to it. A timer of the
 * answer's own, not the socket's idle timer: that one would outlive the
 * answer on a keep-alive connection when --keep-alive-timeout is 0, and
 * close it once idle. One timer, made at the first wait and re-armed
 * (`refresh`, no allocation) for each later one; when it fires with
 * nothing waiting, it does nothing.
 */
export class SendDeadline {
  readonly #ms: number;
  readonly #onExpire: () => void;
  #timer: NodeJS.Timeout | null = null;
  #waiting = false;

  constructor(ms: number, onExpire: () => void) {
    this.#ms = ms;
    this.#onExpire = onExpire;
  }

  /** A write (or the end) waits for the client to take it. */
  wait(): void {
    this.#waiting = true;
    if (this.#timer !== null) return void this.#timer.refresh();
    this.#timer = setTimeout(() => {
      if (this.#waiting) this.#onExpire();
    }, this.#ms).unref();
  }

  /** The client took what waited. */
  taken(): void {
    this.#waiting = false;
  }

  /** Nothing more is written. */
  stop(): void {
    this.#waiting = false;
    if (this.#timer !== null) clearTimeout(this.#timer);
  }
}

/**
 * Cuts a response off midway: its connection is closed, so that the client
 * sees the answer fail. A response queued behind another on a pipelined
 * connection has no socket yet, and node's destroy() then only marks it
 * (node 24): the client would wait for it on an open connection for good.
 * Its connection is closed when its turn comes, after the answers before it.
 */
export function cutOff(res: ServerResponse): void {
  if (res.destroyed) return;
  if (res.socket === null) res.once('socket', (socket) => socket.destroy());
  res.destroy();
}

/** Ends `res`, whose head is set, with `body`; `onTimeout` is told when the client is cut off. */
export function endInSlices(res: ServerResponse, body: Buffer, sendTimeout: number, onTimeout: () => void): void {
  const deadline = new SendDeadline(sendTimeout, () => {
    onTimeout();
    cutOff(res);
  });
  res.once('close', () => deadline.stop());
  let at = 0;
  const next = (): void => {
    deadline.taken();
    while (at < body.length) {
      const end = Math.min(body.length, at + SLICE);
      const more = res.write(body.subarray(at, end));
      at = end;
      if (!more) {
        deadline.wait();
        return void res.once('drain', next);
      }
    }
    res.end();
    if (!res.writableFinished) deadline.wait();
  };
  next();
}
