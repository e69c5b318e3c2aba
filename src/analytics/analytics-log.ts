/**
 * The analytics feed (SPEC §9): one JSON line per capture, written by pino.
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

/** `destination`: a file descriptor (1 = stdout) or a file path to append to. */
export function analyticsLog(destination: number | string = 1): AnalyticsLog {
  const stream = pino.destination({ dest: destination, sync: false, mkdir: true });
  const logger: Logger = pino({ base: null, formatters: { level: (_label, level) => ({ level }) } }, stream);
  return {
    write(line) {
      logger.info(line, 'request');
    },
    flush() {
      stream.flushSync();
    },
  };
}

/** Operational log (start-up, reloads, problems): JSON on stderr. */
export function operationsLog(level = 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
