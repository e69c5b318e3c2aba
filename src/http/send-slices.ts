/**
 * Large bodies made once and sent to many clients (big Python index pages,
 * npm package documents): each answer writes slices of the one shared
 * Buffer, the next once the client took the last. A client that stops
 * reading holds a slice, never a copy, and is cut off once a write has
 * waited `--send-timeout` (nginx's `send_timeout`), instead of keeping its
 * connection for as long as it likes.
 */
import type { ServerResponse } from 'node:http';

/** Bytes written at a time. */
const SLICE = 65536;

/** Ends `res`, whose head is set, with `body`; `onTimeout` is told when the client is cut off. */
export function endInSlices(res: ServerResponse, body: Buffer, sendTimeout: number, onTimeout: () => void): void {
  // The socket's idle timer: each write starts it again.
  res.setTimeout(sendTimeout, () => {
    onTimeout();
    res.destroy();
  });
  let at = 0;
  const next = (): void => {
    while (at < body.length) {
      const end = Math.min(body.length, at + SLICE);
      const more = res.write(body.subarray(at, end));
      at = end;
      if (!more) return void res.once('drain', next);
    }
    res.end();
  };
  next();
}
