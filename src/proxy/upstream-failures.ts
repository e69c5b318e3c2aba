/**
 * Upstream failures in the operations log, with their reason: a refused
 * connection, a certificate the gateway does not trust, a name that does
 * not resolve, a timeout. The answer (502 or 504) and the metric say only
 * that the backend failed. A backend that is down fails every request
 * sent its way: each backend and reason is logged at most once per
 * interval, with the count of the failures not logged since.
 */
import type { Logger } from 'pino';

/** Backend and reason pairs remembered; past it, the memory starts over (a reason may hold varying text). */
const MAX_KEYS = 1000;

export class UpstreamFailureLog {
  readonly #log: Logger;
  readonly #intervalMs: number;
  /** By backend and reason: when it was last logged, and how often it failed since. */
  readonly #seen = new Map<string, { at: number; unlogged: number }>();

  constructor(log: Logger, intervalMs = 10_000) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  /** `backend`: the origin asked (after `--upstream`); `code`: the answer's error code. */
  report(backend: string, code: string, reason: string): void {
    const key = `${backend} ${reason}`;
    const now = Date.now();
    const seen = this.#seen.get(key);
    if (seen !== undefined && now - seen.at < this.#intervalMs) {
      seen.unlogged++;
      return;
    }
    const unlogged = seen?.unlogged ?? 0;
    this.#log.warn({ backend, code, reason, ...(unlogged > 0 ? { unlogged } : {}) }, 'upstream failed');
    if (seen === undefined && this.#seen.size >= MAX_KEYS) this.#seen.clear();
    this.#seen.set(key, { at: now, unlogged: 0 });
  }
}
