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
  // A timer of the answer's own, not the socket's idle timer: that one would
  // outlive the answer on a keep-alive connection when --keep-alive-timeout
  // is 0, and close it once idle. Armed only while a write waits for the client.
  let timer: NodeJS.Timeout | null = null;
  const waitForClient = (): void => {
    if (timer !== null) return void timer.refresh();
    timer = setTimeout(() => {
      onTimeout();
      res.destroy();
    }, sendTimeout).unref();
    res.once('close', () => clearTimeout(timer!));
  };
  let at = 0;
  const next = (): void => {
    while (at < body.length) {
      const end = Math.min(body.length, at + SLICE);
      const more = res.write(body.subarray(at, end));
      at = end;
      if (!more) {
        waitForClient();
        return void res.once('drain', next);
      }
    }
    res.end();
    if (!res.writableFinished) waitForClient();
  };
  next();
}
