/**
 * Decides and performs reloads (SPEC §10): reads the manifest, skips content
 * it has already seen (by SHA-256), checks and compiles the rest off the
 * request path (in slices), then hands a valid table to `apply`, which swaps
 * it in with one assignment. A bad manifest is logged with every problem
 * and counted; the last good table keeps serving. A deleted file is warned
 * about and changes nothing. Checks never overlap: changes that arrive
 * during one are looked at once it ends.
 *
 * A file written in place can be read before its write ends. A read that
 * fails to load is reported only if the file is as it was when the read
 * began; otherwise what was read may be a torn copy, and the look that
 * the change itself causes loads the file (a manifest that is still broken
 * once it stops changing is reported then). A copy that is cut off (its
 * JSON ends too soon, or it is empty) gets `CUT_OFF_GRACE_MS` to change,
 * since its writer may only be pausing (`curl -o` on a slow link, a
 * shell's `>` before the writer's first bytes).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { formatProblem } from '../errors.ts';
import { hashInSlices, loadManifestText, readManifest } from '../manifest/load-manifest.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import { statKey } from './manifest-watcher.ts';

/** How long a cut-off copy of the manifest may stay as it is before it is reported, in ms. */
const CUT_OFF_GRACE_MS = 2000;
/** How often the file is looked at meanwhile, in ms. */
const CUT_OFF_POLL_MS = 100;

export interface ReloadHooks {
  /** Swap in a valid table; `text` is its manifest (for workers). */
  apply(table: RoutingTable, text: string): void;
  rejected(): void;
}

export class Reloader {
  readonly #file: string;
  readonly #log: Logger;
  readonly #hooks: ReloadHooks;
  #seen: string;
  /** The table in service: what a reload can take unchanged domains from. */
  #table: RoutingTable;
  #running: Promise<void> | null = null;
  #again: { reason: string; force: boolean } | null = null;
  #missing = false;

  constructor(file: string, current: RoutingTable, log: Logger, hooks: ReloadHooks) {
    this.#file = file;
    this.#table = current;
    this.#seen = current.hash;
    this.#log = log;
    this.#hooks = hooks;
  }

  /** Look at the file again; `force` reloads even identical content (SIGHUP). */
  check(reason: string, force = false): Promise<void> {
    if (this.#running !== null) {
      this.#again = { reason, force: force || (this.#again?.force ?? false) };
      return this.#running;
    }
    this.#running = this.#run(reason, force).finally(() => {
      this.#running = null;
      const again = this.#again;
      this.#again = null;
      if (again !== null) void this.check(again.reason, again.force);
    });
    return this.#running;
  }

  async #run(reason: string, force: boolean): Promise<void> {
    const before = await statKey(this.#file);
    const bytes = await readManifest(this.#file);
    if (!Buffer.isBuffer(bytes)) {
      if (!this.#missing) this.#log.warn({ reason, file: this.#file, code: bytes.code }, 'manifest cannot be read; the current one keeps serving');
      this.#missing = true;
      return;
    }
    this.#missing = false;
    const hash = await hashInSlices(bytes);
    this.#log.debug({ reason, hash, same: hash === this.#seen }, 'manifest checked');
    if (hash === this.#seen && !force) return;
    this.#seen = hash;
    const started = performance.now();
    const text = bytes.toString('utf8');
    const { table, problems, cutOff } = await loadManifestText(text, hash, this.#table);
    const compileMs = Math.round(performance.now() - started);
    if (table === null) {
      // A cut-off copy's writer may be pausing: it gets time to go on.
      const changed = cutOff === true ? await this.#changesWithin(before, CUT_OFF_GRACE_MS) : (await statKey(this.#file)) !== before;
      if (changed) {
        // The change that tore it is being noticed by the watcher (or the stat check): that look loads it.
        this.#log.debug({ reason }, 'manifest changed while it was read; looking again');
        return;
      }
      this.#log.error({ reason, problems: problems.errors.map(formatProblem) }, 'manifest rejected, the last good one keeps serving');
      this.#hooks.rejected();
      return;
    }
    for (const w of problems.warnings) this.#log.warn({ problem: formatProblem(w) }, 'manifest warning');
    this.#table = table;
    this.#hooks.apply(table, text);
    this.#log.info({ reason, rules: table.counts, hash: table.hash, compileMs }, 'manifest reloaded');
  }

  /** Whether the file changes from what `before` says of it within `ms`. */
  async #changesWithin(before: string, ms: number): Promise<boolean> {
    for (let waited = 0; waited < ms; waited += CUT_OFF_POLL_MS) {
      await sleep(CUT_OFF_POLL_MS, undefined, { ref: false });
      if ((await statKey(this.#file)) !== before) return true;
    }
    return false;
  }
}
