/**
 * Starts the real gateway process (`node src/cli.ts`) on ephemeral ports,
 * collects its analytics lines from stdout and its operational log from
 * stderr, and stops it with a signal. Used by every integration test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const CLI = new URL('../../src/cli.ts', import.meta.url).pathname;

export interface AnalyticsLine {
  requestId: string;
  method: string;
  host: string;
  path: string;
  query: string;
  status: number;
  outcome: string;
  durationMs: number;
  client: { ip: string | null; userAgent: string | null; referer: string | null };
  capture: Record<string, unknown> | null;
  [key: string]: unknown;
}

export interface GatewayProcess {
  readonly port: number;
  readonly adminPort: number;
  readonly dir: string;
  readonly manifestPath: string;
  readonly child: ChildProcess;
  /** Analytics lines seen so far. */
  readonly lines: AnalyticsLine[];
  /** Operational log lines (stderr), parsed when JSON. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the lines of one request id once `count` of them arrived. */
  linesFor(requestId: string, count?: number): Promise<AnalyticsLine[]>;
  /** Waits for an analytics line that satisfies `predicate` (for requests whose id the client never saw). */
  waitForLine(predicate: (l: AnalyticsLine) => boolean, timeoutMs?: number): Promise<AnalyticsLine>;
  /** Waits for an operational log line that satisfies `predicate`. */
  waitForLog(predicate: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  /** Manifest object (written as JSON) or raw text. */
  manifest?: unknown;
  /** Serve this existing manifest file instead. */
  manifestPath?: string;
  args?: string[];
  env?: Record<string, string>;
}

/** Folders made by tempDir, removed when the test process exits. */
const madeDirs: string[] = [];
process.once('exit', () => {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
});

/** A new folder under the system's temporary folder; it goes away with the test process. */
export function tempDir(prefix = 'gw-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

export async function startGateway(opts: StartOptions): Promise<GatewayProcess> {
  const dir = tempDir();
  const manifestPath = opts.manifestPath ?? join(dir, 'manifest.json');
  if (opts.manifestPath === undefined) {
    writeFileSync(manifestPath, typeof opts.manifest === 'string' ? opts.manifest : JSON.stringify(opts.manifest, null, 2));
  }
  const child = spawn(
    process.execPath,
    [CLI, '--manifest', manifestPath, '--port', '0', '--admin-port', '0', ...(opts.args ?? [])],
    { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: AnalyticsLine[] = [];
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of waiters) w();
  };
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(JSON.parse(l) as AnalyticsLine);
    notify();
  });
  createInterface({ input: child.stderr! }).on('line', (l) => {
    try {
      logs.push(JSON.parse(l) as Record<string, unknown>);
    } catch {
      logs.push({ text: l });
    }
    notify();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  function waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise((resolve, reject) => {
      const tryNow = () => {
        const v = check();
        if (v !== undefined) {
          clearTimeout(timer);
          waiters.delete(tryNow);
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(tryNow);
        reject(new Error(`timed out waiting for ${what}; logs: ${JSON.stringify(logs.slice(-5))}`));
      }, timeoutMs);
      waiters.add(tryNow);
      tryNow();
    });
  }

  const waitForLog = (predicate: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000) =>
    waitFor(() => logs.find(predicate), timeoutMs, 'a log line');

  const listening = await Promise.race([
    waitForLog((l) => l.msg === 'listening', 15_000),
    exited.then((code) => {
      throw new Error(`gateway exited with ${code}: ${logs.map((l) => JSON.stringify(l)).join('\n')}`);
    }),
  ]);

  return {
    port: listening.port as number,
    adminPort: listening.adminPort as number,
    dir,
    manifestPath,
    child,
    lines,
    logs,
    linesFor: (id, count = 1) =>
      waitFor(
        () => {
          const found = lines.filter((l) => l.requestId === id);
          return found.length >= count ? found : undefined;
        },
        10_000,
        `${count} analytics line(s) for ${id}`,
      ),
    waitForLine: (predicate, timeoutMs = 10_000) => waitFor(() => lines.find(predicate), timeoutMs, 'an analytics line'),
    waitForLog,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}
