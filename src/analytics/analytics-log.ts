/**
 * The analytics feed (SPEC §9): one JSON line per capture, in pino's line
 * format (level, time, msg first), written in batches by `LineWriter`;
 * `close()` writes every line still buffered, which graceful shutdown awaits
 * so that no line is lost. Operational messages go to a pino logger on
 * stderr, so stdout stays a clean feed.
 */
import { pino, type Logger } from 'pino';
import type { Capture, Outcome } from './capture.ts';
import { LineWriter } from './line-writer.ts';

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
  /** How often requests waited for the destination (LineWriter.blockingWrites). */
  readonly blockingWrites: number;
  /** Whether the destination has no room for lines (ENOSPC, EDQUOT) just now. */
  readonly full: boolean;
  /** Opens the file again by its path (after a rotation); false when the destination is a file descriptor. */
  reopen(): boolean;
  /** Write every buffered line, blocking, at most `timeoutMs` (a process about to end on an unexpected error). */
  flushSync(timeoutMs: number): boolean;
  /** Write every buffered line, then close the destination. */
  close(): Promise<void>;
}

const str = JSON.stringify;

/** What JSON.stringify writes escaped: controls, quote and backslash; and surrogates, which it keeps when paired. */
const ESCAPED = /[\u0000-\u001f"\\\ud800-\udfff]/;

/**
 * Hot path. `JSON.stringify(s)`, without a call into V8's runtime when
 * nothing needs escaping. Seven strings per line: about 2,500 fewer
 * instructions per request in the floor server (callgrind, 3 alternated
 * pairs; 78–79k against 81–82k). The capture stays with JSON.stringify: a
 * walk over its keys in JavaScript cost more.
 */
export function quote(s: string | null): string {
  if (s === null) return 'null';
  return ESCAPED.test(s) ? str(s) : `"${s}"`;
}

/** The fractional parts of a millisecond count to the microsecond, as JavaScript prints them: '', '.001', ..., '.21', ... */
const FRACTIONS = Array.from({ length: 1000 }, (_, i) => String(i / 1000).slice(1));

/**
 * Hot path. A duration in ms, rounded to the microsecond, as `String` prints
 * it: from integers and a table instead of formatting a double (with the
 * request's headers read once in the handler: 86.1–87.6k → 85.0–85.5k
 * instructions per request for file-10, callgrind, 3 alternated pairs).
 */
export function formatMs(ms: number): string {
  const micros = Math.round(ms * 1000);
  if (!(micros >= 0 && micros <= 0x7fffffff)) return String(micros / 1000);
  const whole = Math.floor(micros / 1000);
  return `${whole}${FRACTIONS[micros - whole * 1000]}`;
}

let lastMs = -1;
let lastMsText = '';

/**
 * Hot path. `String(ms)` of the line's time, made once per millisecond
 * (at the gateway's rates a millisecond holds dozens of lines): a time in
 * ms is not a small integer, and V8 prints it as a double, about 1,000
 * instructions each time (callgrind).
 */
function timeText(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastMsText = String(ms);
  }
  return lastMsText;
}

/**
 * Hot path. One line, serialized by a fixed template, as pino serializes
 * its fixed fields once: only the values are stringified per request.
 * The field order and names are those of `schema/event.schema.json`.
 */
export function serializeLine(line: RequestLine, time: number): string {
  const c = line.client;
  return (
    `{"level":30,"time":${timeText(time)},"msg":"request","requestId":"${line.requestId}","method":${quote(line.method)},` +
    `"host":${quote(line.host)},"path":${quote(line.path)},"query":${quote(line.query)},"status":${line.status},` +
    `"outcome":"${line.outcome}","durationMs":${formatMs(line.durationMs)},"client":{"ip":${quote(c.ip)},"userAgent":${quote(c.userAgent)},` +
    `"referer":${quote(c.referer)}},"capture":${line.capture === null ? 'null' : str(line.capture)}}\n`
  );
}

/** The destination of `--analytics`: `-` is stdout (fd 1), anything else a file path. */
export function feedDestination(analytics: string): number | string {
  return analytics === '-' ? 1 : analytics;
}

/**
 * `destination`: a file descriptor (1 = stdout) or a file path to append to.
 * `onFull`: the destination stopped taking lines for lack of room (its error
 * code), or takes them again (null); the lines wait meanwhile.
 */
export function analyticsLog(destination: number | string = 1, onFull?: (code: string | null) => void): AnalyticsLog {
  const writer = new LineWriter(destination, { onFull });
  return {
    write(line) {
      writer.write(serializeLine(line, Date.now()));
    },
    get blockingWrites() {
      return writer.blockingWrites;
    },
    get full() {
      return writer.full;
    },
    reopen: () => writer.reopen(),
    flushSync: (timeoutMs) => writer.flushSync(timeoutMs),
    close: () => writer.close(),
  };
}

/** Operational log (start-up, reloads, problems): JSON on stderr. */
export function operationsLog(level = 'info'): Logger {
  return pino({ level, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
}
