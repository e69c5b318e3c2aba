/**
 * Notices every kind of change to the manifest file (SPEC §10):
 *
 * - chokidar watches the file's folder (not the file), following symlinks,
 *   so an in-place write, an editor's write-to-temp-then-rename (every later
 *   save too, even over a symlink), and a Kubernetes ConfigMap swap
 *   (`manifest.json` → `..data/manifest.json`, `..data` replaced by a
 *   rename) all show up as events there; the folder a symlinked manifest
 *   points into is watched as well. Other files in the folder (an analytics
 *   file appended on every request) are dropped by name before any
 *   file-system call: chokidar 6 checks `ignored` first, where chokidar 4
 *   read the folder and stat'ed each entry on every event, ≈ 8 µs of CPU
 *   per request when the analytics file sat next to the manifest
 *   (test/internals/manifest-watcher.test.ts);
 * - events are debounced, so a file written in several pieces is read once;
 * - a periodic stat check (inode, size, mtime, through symlinks) backs the
 *   watcher up, for writes it cannot see (network file systems), and every
 *   tenth round the content is hashed and compared whatever the stat says.
 *
 * It only says "look again"; the reloader reads, hashes and decides.
 */
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';

/** What a stat of the file (through symlinks) says of it: inode, size and time, or why there is none. */
export async function statKey(file: string): Promise<string> {
  try {
    const s = await stat(file);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? 'error';
  }
}

export interface WatcherOptions {
  /** Quiet time after the last event before looking, in ms. */
  readonly debounceMs: number;
  /** Interval of the stat check, in ms. */
  readonly pollMs: number;
}

export class ManifestWatcher {
  readonly #file: string;
  readonly #options: WatcherOptions;
  readonly #onChange: (reason: string) => void;
  #watcher: FSWatcher | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #poll: NodeJS.Timeout | null = null;
  #lastStat = '';
  #closed = false;
  #polls = 0;
  /** The folder of the file the manifest path resolves to, when that is elsewhere (a symlink). */
  #realDir: string | null = null;
  #realFile: string | null = null;

  constructor(file: string, options: WatcherOptions, onChange: (reason: string) => void) {
    this.#file = file;
    this.#options = options;
    this.#onChange = onChange;
  }

  async start(): Promise<void> {
    this.#lastStat = await statKey(this.#file);
    const name = basename(this.#file);
    const folder = dirname(this.#file);
    // Only the entries that can change the manifest.
    const relevant = (path: string) =>
      path === folder || path === this.#realDir || path === this.#realFile || basename(path) === name || basename(path).startsWith('..');
    this.#watcher = watch(folder, { depth: 0, ignoreInitial: true, followSymlinks: true, atomic: false, ignored: (path: string) => !relevant(path) });
    this.#watcher.on('all', (_event, path) => {
      // The manifest itself, a ConfigMap's `..data` link and its targets, or
      // the file a symlinked manifest points to.
      const entry = basename(path);
      if (entry === name || entry.startsWith('..') || path === this.#realFile) this.#schedule('watch');
    });
    this.#watcher.on('error', () => this.#schedule('watch-error'));
    await new Promise<void>((resolve) => this.#watcher!.once('ready', () => resolve()));
    await this.#retarget();
    this.#poll = setInterval(() => void this.#pollOnce(), this.#options.pollMs);
    this.#poll.unref();
  }

  #schedule(reason: string): void {
    if (this.#debounce !== null) clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      // The stat check starts from what is about to be read: a change the
      // watcher saw is not read and hashed a second time when the next
      // stat check finds the file's new size and time.
      void statKey(this.#file).then((key) => {
        if (this.#closed) return;
        this.#lastStat = key;
        this.#onChange(reason);
        void this.#retarget();
      });
    }, this.#options.debounceMs);
  }

  /**
   * A symlinked manifest (ConfigMap) can be written where it points to:
   * watch that folder too, and follow the link when it moves.
   */
  async #retarget(): Promise<void> {
    let real: string;
    try {
      real = await realpath(this.#file);
    } catch {
      return;
    }
    const dir = dirname(real);
    this.#realFile = real;
    if (dir === this.#realDir) return;
    if (this.#realDir !== null) this.#watcher?.unwatch(this.#realDir);
    this.#realDir = dir === dirname(this.#file) ? null : dir;
    if (this.#realDir !== null) this.#watcher?.add(this.#realDir);
  }

  async #pollOnce(): Promise<void> {
    const key = await statKey(this.#file);
    // Every tenth round the content itself is looked at (the reloader
    // compares hashes), for changes that keep size and mtime.
    if (key === this.#lastStat && ++this.#polls % 10 !== 0) return;
    this.#lastStat = key;
    this.#schedule('poll');
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#debounce !== null) clearTimeout(this.#debounce);
    if (this.#poll !== null) clearInterval(this.#poll);
    await this.#watcher?.close();
  }
}
