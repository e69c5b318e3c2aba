/**
 * `--workers` with a feed that is not a regular file (stdout to a pipe or
 * a socket, a FIFO): the primary is its only writer. Writes to a pipe of
 * more than PIPE_BUF bytes are not atomic: the kernel lets another
 * process's write into the middle of one when the pipe fills, and a body
 * event's line can be 64 KiB. So each worker writes its lines to a pipe of
 * its own, read here, and whole lines go on to the one destination in the
 * order each worker wrote them.
 *
 * Backpressure is the pipes': when the destination falls 32 MiB behind,
 * this process waits for it (LineWriter's bound), stops reading, the
 * workers' pipes fill and the workers' own writers wait in turn. Nothing
 * is dropped and nothing grows without end. A regular file needs none of this: each
 * worker appends to it with O_APPEND, which keeps every write whole.
 */
import { fstatSync, statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { LineWriter, type LineWriterOptions } from './line-writer.ts';

/** The variable that tells a worker which of its fds is its pipe to the primary. */
export const RELAY_FD_VARIABLE = 'SCARF_GATEWAY_ANALYTICS_FD';

/** Whether workers must hand their lines to the primary: the destination is not a regular file. */
export function needsRelay(destination: number | string): boolean {
  try {
    return !(typeof destination === 'number' ? fstatSync(destination) : statSync(destination)).isFile();
  } catch {
    return false; // a file not there yet: it is created as a regular file
  }
}

export class LineRelay {
  readonly #writer: LineWriter;
  readonly #ended = new Set<Promise<void>>();
  readonly #onPartial: (bytes: number) => void;

  /** `onPartial`: a worker's pipe ended in the middle of a line (the worker died), whose bytes are dropped. */
  constructor(destination: number | string, onPartial: (bytes: number) => void, options: LineWriterOptions = {}) {
    this.#writer = new LineWriter(destination, options);
    this.#onPartial = onPartial;
  }

  /** How often this process waited for the destination, reading no worker's pipe meanwhile. */
  get blockingWrites(): number {
    return this.#writer.blockingWrites;
  }

  /** Relays the lines of one worker's pipe until it ends. */
  add(pipe: Readable): void {
    // The bytes after the last newline: the start of a line still coming.
    let rest: Buffer | null = null;
    pipe.on('data', (chunk: Buffer) => {
      const data = rest === null ? chunk : Buffer.concat([rest, chunk]);
      const end = data.lastIndexOf(0x0a) + 1;
      // A newline never occurs inside a multi-byte UTF-8 character: the part up to it decodes whole.
      if (end > 0) this.#writer.write(data.toString('utf8', 0, end));
      rest = end === data.length ? null : data.subarray(end);
    });
    const ended = new Promise<void>((resolve) => {
      pipe.once('close', () => {
        if (rest !== null) this.#onPartial(rest.length);
        this.#ended.delete(ended);
        resolve();
      });
    });
    this.#ended.add(ended);
  }

  /** Writes the lines relayed so far, blocking, at most `timeoutMs` (LineWriter.flushSync). */
  flushSync(timeoutMs: number): boolean {
    return this.#writer.flushSync(timeoutMs);
  }

  /** Once every pipe has ended (the workers exited), writes what is left and closes the destination. */
  async close(): Promise<void> {
    await Promise.all(this.#ended);
    await this.#writer.close();
  }
}
