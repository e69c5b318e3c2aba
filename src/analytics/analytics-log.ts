/**
 * The analytics feed (SPEC §9): one JSON line per capture, written through
 * pino's destination.
 * Lines are buffered and written asynchronously (SonicBoom); `flush()` writes
 * what is buffered synchronously, which graceful shutdown calls so that no
 * line is lost. Operational messages go to a separate logger on stderr, so
 * stdout stays a clean feed.
 */
import { pino, type Logger } from 'pino';
import type { Capture, Outcome } from './capture.ts';

/** One analytics line, as `schema/event.schema.json` describes it. */
export interface RequestLine {
  readonly requestId: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
  readonly query: string;
  readonly status: number;
  readonly outcome: Outcome;
  readonly durationMs: number;
  readonly client: { readonly ip: string | null; readonly userAgent: string | null; readonly referer: string | null };
  readonly capture: Capture | null;
}

export interface AnalyticsLog {
  write(line: RequestLine): void;
  /** Write buffered lines now (synchronously). */
  flush(): void;
}

const str = JSON.stringify;

/**
 * Hot path. One line, serialized by a fixed template, as pino serializes
 * its fixed fields once: only the values are stringified per request.
 * The field order and names are those of `schema/event.schema.json`.
 */
export function serializeLine(line: RequestLine, time: number): string {
  const c = line.client;
  return (
    `{"level":30,"time":${time},"msg":"request","requestId":"${line.requestId}","method":${str(line.method)},` +
    `"host":${str(line.host)},"path":${str(line.path)},"query":${str(line.query)},"status":${line.status},` +
    `"outcome":"${line.outcome}","durationMs":${line.durationMs},"client":{"ip":${str(c.ip)},"userAgent":${str(c.userAgent)},` +
    `"referer":${str(c.referer)}},"capture":${line.capture === null ? 'null' : str(line.capture)}}\n`
  );
}

/**
 * `destination`: a file descriptor (1 = stdout) or a file path to append to.
 * Lines go through pino's asynchronous destination (SonicBoom), which
 * batches writes while one is in flight.
 */
export function analyticsLog(destination: number | string = 1, maxDelayMs = 100): AnalyticsLog {
  // Lines are gathered up to 8 KiB before a write, and written at least
  // every `maxDelayMs`: one write call per batch instead of one per request.
  const stream = pino.destination({ dest: destination, sync: false, mkdir: true, minLength: 8192 });
  const timer = setInterval(() => stream.flush(), maxDelayMs);
  timer.unref();
  return {
    write(line) {
      stream.write(serializeLine(line, Date.now()));
    },
    flush() {
      clearInterval(timer);
      stream.flushSync();
    },
  };
}

/** Operational log (start-up, reloads, problems): JSON on stderr. */
export function operationsLog(level = 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
