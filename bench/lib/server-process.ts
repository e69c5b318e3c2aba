/**
 * A server under test in its own process: started fresh for each
 * measurement, with its CPU time and peak RSS read from /proc (Linux),
 * summed over the process and its children (cluster workers).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface ServerProcess {
  readonly port: number;
  readonly adminPort: number | null;
  readonly child: ChildProcess;
  /** Operational log lines (stderr, JSON). */
  readonly logs: Record<string, unknown>[];
  /** user + system CPU seconds of the process tree so far. */
  cpuSeconds(): number;
  /** The system (kernel) part of `cpuSeconds`. */
  systemSeconds(): number;
  /** Peak RSS (VmHWM) of the process tree, in bytes (sum over processes). */
  peakRss(): number;
  /** Current RSS of the process tree, in bytes. */
  rss(): number;
  waitForLog(predicate: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  stop(): Promise<void>;
}

const TICKS = 100; // USER_HZ on Linux

function tree(pid: number): number[] {
  const pids = [pid];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (children !== '') for (const c of children.split(' ')) pids.push(...tree(Number(c)));
    }
  } catch {
    // The process is gone.
  }
  return pids;
}

/** CPU seconds of a process from /proc/PID/stat: user + system, or system alone. */
function cpuOf(pid: number, part: 'all' | 'system'): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const system = Number(fields[12]);
    return (part === 'system' ? system : Number(fields[11]) + system) / TICKS;
  } catch {
    return 0;
  }
}

function statusKb(pid: number, key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

/**
 * `node ...args`, run by `wrapper` when one is given (a command line that
 * ends where node's starts, as `valgrind --tool=callgrind`).
 */
export async function startServer(args: string[], env: Record<string, string> = {}, wrapper: readonly string[] = []): Promise<ServerProcess> {
  const [command, ...rest] = [...wrapper, process.execPath, ...args];
  const child = spawn(command, rest, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: child.stderr! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      logs.push({ text: line });
    }
    for (const w of waiters) w();
  });
  const waitForLog = (predicate: (l: Record<string, unknown>) => boolean, timeoutMs = 120_000) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = logs.find(predicate);
        if (found !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`server did not log in time: ${JSON.stringify(logs.slice(-3))}`));
      }, timeoutMs);
      waiters.add(check);
      child.once('exit', (code) => {
        if (waiters.has(check)) reject(new Error(`server exited with ${code}: ${JSON.stringify(logs.slice(-3))}`));
      });
      check();
    });
  const listening = await waitForLog((l) => l.msg === 'listening');
  const pid = child.pid!;
  return {
    port: listening.port as number,
    adminPort: (listening.adminPort as number | undefined) ?? null,
    child,
    logs,
    cpuSeconds: () => tree(pid).reduce((sum, p) => sum + cpuOf(p, 'all'), 0),
    systemSeconds: () => tree(pid).reduce((sum, p) => sum + cpuOf(p, 'system'), 0),
    peakRss: () => tree(pid).reduce((sum, p) => sum + statusKb(p, 'VmHWM'), 0),
    rss: () => tree(pid).reduce((sum, p) => sum + statusKb(p, 'VmRSS'), 0),
    waitForLog,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
