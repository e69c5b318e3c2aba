/**
 * `--workers N` (node:cluster): N worker processes share the public port;
 * the primary watches the manifest, decides each reload once (read, hash,
 * check, compile), sends every valid new manifest to all workers, serves the
 * admin port (with the workers' metrics added up, worker-metrics.ts), writes
 * the workers' analytics lines when the feed is not a regular file
 * (`LineRelay`), and stops them gracefully on SIGTERM/SIGINT.
 */
import cluster, { type Worker } from 'node:cluster';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Readable } from 'node:stream';
import { Registry } from 'prom-client';
import type { Logger } from 'pino';
import { createAdminHandler } from './admin/admin-handler.ts';
import { ManifestMetrics, relayMetrics } from './admin/metrics.ts';
import { WorkerMetrics } from './admin/worker-metrics.ts';
import { feedDestination } from './analytics/analytics-log.ts';
import { LineRelay, needsRelay, RELAY_FD_VARIABLE } from './analytics/line-relay.ts';
import { formatProblem, ManifestError } from './errors.ts';
import { loadCertificate } from './http/tls-listener.ts';
import { loadManifestFile } from './manifest/load-manifest.ts';
import type { GatewayOptions } from './options.ts';
import { ManifestWatcher } from './reload/manifest-watcher.ts';
import { Reloader } from './reload/reloader.ts';
import type { ManifestMessage, ManifestWanted } from './reload/primary-manifests.ts';
import { listen } from './server.ts';

export interface Primary {
  reload(reason: string, force?: boolean): Promise<void>;
  /** Each worker opens the `--analytics` file again (the signal is passed on). */
  reopenAnalytics(): void;
  /** Each worker reads `--tls-cert`, `--tls-key` and `--registry-auth` again (SIGHUP is passed on). */
  rereadFiles(): void;
  /** Writes the lines relayed so far, blocking, at most `timeoutMs` (Gateway.flushAnalytics); without a relay, nothing to write. */
  flushAnalytics(timeoutMs: number): boolean;
  close(): Promise<void>;
}

/** How long a worker that keeps failing to start waits before the next try, in ms: the first time, doubled each time after, at most. */
const FIRST_RESTART_DELAY_MS = 1000;
const MAX_RESTART_DELAY_MS = 30_000;

export async function startPrimary(options: GatewayOptions, log: Logger): Promise<Primary> {
  const loaded = await loadManifestFile(options.manifest);
  for (const w of loaded.problems.warnings) log.warn({ problem: formatProblem(w) }, 'manifest warning');
  if (loaded.table === null) throw new ManifestError(loaded.problems.errors);
  // Checked once here, so that a certificate that cannot serve stops the start before any worker; each worker reads its own.
  for (const files of options.tls) loadCertificate(files);
  log.info({ manifest: options.manifest, rules: loaded.table.counts, hash: loaded.table.hash, workers: options.workers }, 'manifest loaded');

  const own = new Registry();
  const manifestMetrics = new ManifestMetrics(own);
  manifestMetrics.manifest(loaded.table);
  const workerMetrics = new WorkerMetrics();

  // Each worker's analytics pipe is its fd 4 (3 is the cluster's IPC channel).
  const destination = feedDestination(options.analytics);
  const relay = needsRelay(destination)
    ? new LineRelay(destination, (bytes) => log.error({ bytes }, 'a worker ended in the middle of an analytics line; its start is dropped'))
    : null;
  if (relay !== null) {
    cluster.setupPrimary({ stdio: [0, 1, 2, 'ipc', 'pipe'] });
    relayMetrics(own, relay);
  }

  const workers = new Set<Worker>();
  /** The manifest in service, which a worker gets when it asks (at its start); then each new one, as the workers that asked get it. */
  let serving = { text: loaded.text!, hash: loaded.table.hash };
  const following = new Set<Worker>();
  /** Workers not listening yet, with the signals held for them: SIGUSR2 or SIGHUP could come before their handlers and end them; they get them once up. */
  const starting = new Map<Worker, Set<NodeJS.Signals>>();
  let stopping = false;
  /** Until every first worker listens: one that exits before it listens fails the start, as it would fail a single process (a port in use). */
  let failStart: ((e: Error) => void) | null = null;
  /** Workers in a row that died before they listened; each waits longer for the next (a start that keeps failing must not fork in a loop). */
  let failedStarts = 0;
  const fork = () => {
    const w = cluster.fork(relay === null ? {} : { [RELAY_FD_VARIABLE]: '4' });
    if (relay !== null) relay.add(w.process.stdio[4] as Readable);
    workers.add(w);
    starting.set(w, new Set());
    w.on('message', (m) => {
      workerMetrics.take(m);
      if ((m as ManifestWanted)?.type !== 'manifest-wanted') return;
      w.send({ type: 'manifest', ...serving, reason: 'start' } satisfies ManifestMessage);
      following.add(w);
    });
    w.once('listening', () => {
      failedStarts = 0;
      for (const signal of starting.get(w) ?? []) w.process.kill(signal);
      starting.delete(w);
    });
    w.on('exit', (code, signal) => {
      const listened = !starting.delete(w);
      workers.delete(w);
      following.delete(w);
      if (stopping) return;
      if (!listened && failStart !== null) {
        failStart(new Error(`a worker exited before it listened (${signal ?? `exit code ${code}`}); its message is above`));
        return;
      }
      const restartInMs = listened ? 0 : Math.min(MAX_RESTART_DELAY_MS, FIRST_RESTART_DELAY_MS * 2 ** failedStarts++);
      log.error({ worker: w.process.pid, code, signal, restartInMs }, 'worker died, starting another');
      setTimeout(() => {
        if (!stopping) fork();
      }, restartInMs).unref();
    });
    return w;
  };
  const listening = new Promise<{ port: number }>((resolve, reject) => {
    failStart = reject;
    let listened = 0;
    const onListening = (_w: Worker, address: { port: number }) => {
      if (++listened < options.workers) return;
      cluster.off('listening', onListening);
      resolve(address);
    };
    cluster.on('listening', onListening);
  });
  for (let i = 0; i < options.workers; i++) fork();
  /** A start that fails once workers run: they stop (those still starting may hang in it: killed after the drain time). */
  const abandon = async (e: unknown): Promise<never> => {
    stopping = true;
    await stopWorkers(workers, options.drainTimeout);
    await relay?.close();
    throw e;
  };
  const address = await listening.catch(abandon).finally(() => (failStart = null));

  const signalWorkers = (signal: NodeJS.Signals) => {
    for (const w of workers) {
      const held = starting.get(w);
      if (held === undefined) w.process.kill(signal);
      else held.add(signal);
    }
  };
  const broadcast = (text: string, hash: string, reason: string) => {
    serving = { text, hash };
    const message: ManifestMessage = { type: 'manifest', text, hash, reason };
    for (const w of following) w.send(message);
  };
  const reloader = new Reloader(options.manifest, loaded.table, log, {
    apply(table, text) {
      manifestMetrics.manifest(table);
      manifestMetrics.reload('success');
      broadcast(text, table.hash, 'reload');
    },
    rejected: () => manifestMetrics.reload('rejected'),
  });
  const watcher = new ManifestWatcher(options.manifest, { debounceMs: options.watchDebounce, pollMs: options.watchInterval }, (reason) => void reloader.check(reason));
  await watcher.start();

  let admin: Server | null = null;
  let adminPort: number | null = null;
  if (options.adminPort >= 0) {
    admin = createServer(
      createAdminHandler({
        // Up since every first worker listened (this server starts after); ready while one is, and not once stopping.
        ready: () => !stopping && workers.size > starting.size,
        metrics: async () => (await own.metrics()) + '\n' + (await workerMetrics.text([...workers].filter((w) => !starting.has(w)))),
      }),
    );
    adminPort = await listen(admin, options.adminPort, options.adminHost).catch(async (e: unknown) => {
      await watcher.close();
      return abandon(e);
    });
  }
  log.info({ host: options.host, port: address.port, adminPort, workers: options.workers }, 'listening');

  return {
    reload: (reason, force = false) => reloader.check(reason, force),
    reopenAnalytics: () => signalWorkers('SIGUSR2'),
    rereadFiles: () => signalWorkers('SIGHUP'),
    flushAnalytics: (timeoutMs) => relay?.flushSync(timeoutMs) ?? true,
    async close() {
      stopping = true;
      await watcher.close();
      await stopWorkers(workers);
      await relay?.close();
      if (admin !== null) await new Promise((resolve) => admin.close(resolve));
    },
  };
}

/** SIGTERM to each worker, then the wait for all to exit; the ones left after `killAfterMs` get SIGKILL. */
async function stopWorkers(workers: Iterable<Worker>, killAfterMs = Infinity): Promise<void> {
  const list = [...workers];
  // A worker leaves the set in its 'exit' handler: each one here has yet to exit.
  const exits = Promise.all(list.map((w) => once(w, 'exit')));
  for (const w of list) w.process.kill('SIGTERM');
  const timer = Number.isFinite(killAfterMs) ? setTimeout(() => list.forEach((w) => w.process.kill('SIGKILL')), killAfterMs) : undefined;
  await exits;
  clearTimeout(timer);
}
