/**
 * `npm run bench [-- --quick] [-- --out FILE] [-- --only NAME,...]`: named scenarios, each in
 * fresh processes, load from autocannon on 127.0.0.1, bounded in time.
 *
 * Every scenario is measured against a baseline in the same run, alternated
 * (A B A B ...), and reported as the median of the rounds: requests per
 * second, p50/p99 latency, server CPU time per request (user + sys of the
 * server's process tree / requests served: it holds up even when the load
 * generator, which shares the machine, is the bottleneck), and peak RSS.
 * `instructions` counts what the same servers execute per request, under
 * valgrind's callgrind, against the same baseline.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpus, totalmem, tmpdir, platform, release } from 'node:os';
import { dirname, join } from 'node:path';
import { createServer, request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { createInterface } from 'node:readline';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { startServer, type ServerProcess } from './lib/server-process.ts';
import { sendBlob } from './lib/blob-stream.ts';
import { dockerRules, fileRules, npmDocument, npmRules, pythonRules, type Workload } from './lib/manifests.ts';
import { NODE_FLAGS } from '../src/node-flags.ts';
import { makeCerts } from '../test/helpers/registry.ts';

const quick = process.argv.includes('--quick');
const outIndex = process.argv.indexOf('--out');
const onlyIndex = process.argv.indexOf('--only');
/** `--only a,b`: run these scenarios alone (results.md is then left alone unless --out says). */
const only = onlyIndex === -1 ? null : new Set(process.argv[onlyIndex + 1].split(','));
const selected = (name: string) => only === null || only.has(name);
const outFile = outIndex === -1 ? (quick || only !== null ? null : new URL('./results.md', import.meta.url).pathname) : process.argv[outIndex + 1];
const DURATION = quick ? 1 : 5;
const ROUNDS = quick ? 1 : 5;
const CONNECTIONS = 32;
const SCALE = quick ? 0.2 : 1;
/** instructions: requests counted, after so many uncounted (warm-up). */
const COUNTED = quick ? 200 : 5000;
const UNCOUNTED = quick ? 300 : 20_000;
const work = mkdtempSync(join(tmpdir(), 'gw-bench-'));
const logs = mkdtempSync(join(tmpdir(), 'gw-bench-analytics-'));
// A full run writes about 3.5 GB of analytics lines and 100 MB of manifests.
process.once('exit', () => {
  for (const dir of [work, logs]) rmSync(dir, { recursive: true, force: true });
});
/** The launcher npm start and the systemd unit run, with the same node flags. */
const CLI = new URL('../bin/scarf-gateway.js', import.meta.url).pathname;
const BASELINE = new URL('./baseline-server.ts', import.meta.url).pathname;
const FLOOR = new URL('./floor-server.ts', import.meta.url).pathname;

type Scheme = 'http' | 'https';

interface Measure {
  rps: number;
  p50: number;
  p99: number;
  cpuUs: number;
  /** The system (kernel) part of cpuUs. */
  sysUs: number;
  rssMb: number;
  total: number;
  unexpected: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function medianMeasure(ms: Measure[]): Measure {
  const pick = (k: keyof Measure) => median(ms.map((m) => m[k]));
  return { rps: pick('rps'), p50: pick('p50'), p99: pick('p99'), cpuUs: pick('cpuUs'), sysUs: pick('sysUs'), rssMb: pick('rssMb'), total: pick('total'), unexpected: pick('unexpected') };
}

/** `requests` in turn on CONNECTIONS connections, for `bound` (seconds, or a number of requests); over TLS to a server that speaks it (autocannon does not check its certificate). */
async function fire(server: ServerProcess, requests: Workload['requests'], expect: readonly number[], bound: { duration: number } | { amount: number }, scheme: Scheme = 'http') {
  const result = await autocannon({ url: `${scheme}://127.0.0.1:${server.port}`, connections: CONNECTIONS, requests: requests as autocannon.Request[], ...bound });
  // Answers of the expected status classes (2xx, 3xx); anything else is reported.
  const counts = result as unknown as Record<string, number>;
  const expected = expect.reduce((sum, cls) => sum + (counts[`${cls}xx`] ?? 0), 0);
  return { result, total: result.requests.total, unexpected: result.requests.total - expected + result.errors };
}

/** One load run against a running server. */
async function load(server: ServerProcess, requests: Workload['requests'], expect: readonly number[], seconds = DURATION, scheme: Scheme = 'http'): Promise<Measure> {
  const cpu0 = server.cpuSeconds();
  const sys0 = server.systemSeconds();
  const { result, total, unexpected } = await fire(server, requests, expect, { duration: seconds }, scheme);
  const cpu = server.cpuSeconds() - cpu0;
  const sys = server.systemSeconds() - sys0;
  return {
    rps: total / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUs: total === 0 ? NaN : (cpu / total) * 1e6,
    sysUs: total === 0 ? NaN : (sys / total) * 1e6,
    rssMb: server.peakRss() / 1048576,
    total,
    unexpected,
  };
}

let counter = 0;
function writeManifest(manifest: unknown): string {
  const file = join(work, `manifest-${++counter}.json`);
  writeFileSync(file, JSON.stringify(manifest));
  return file;
}

function gatewayArgs(manifestFile: string, extra: string[] = []): string[] {
  // Run as deployed: with the node flags of npm start and the systemd unit.
  return [...NODE_FLAGS, CLI, '--manifest', manifestFile, '--port', '0', '--admin-port', '0', '--analytics', join(logs, `analytics-${counter}.jsonl`), ...extra];
}

/**
 * Run `fn` on a fresh process started with `args`, then stop it. Its
 * analytics lines are deleted then: left behind, a full run's gigabytes of
 * them are written back to disk while later scenarios run.
 */
async function withServer<T>(args: string[], fn: (s: ServerProcess) => Promise<T>, env: Record<string, string> = {}): Promise<T> {
  const server = await startServer(args, env);
  try {
    return await fn(server);
  } finally {
    await server.stop();
    for (const file of readdirSync(logs)) rmSync(join(logs, file), { force: true });
  }
}

/** A server measured against the baseline: how to start it, and what to ask it. */
interface Subject {
  /** Its name for `--only`. */
  key: string;
  /** Its name in the tables (sizes follow `--quick`). */
  name: string;
  /** node's arguments; `gateway` is added to a gateway's own command line. */
  args: (gateway?: string[]) => string[];
  requests: Workload['requests'];
  /** Status classes of a right answer. */
  expect: readonly number[];
  notes?: string;
  /** Run on each fresh server before it is measured. */
  warm?: (s: ServerProcess) => Promise<void>;
  /** Over TLS, against the baseline over TLS: the certificate and key both serve with. */
  tls?: { cert: string; key: string };
}

interface Row {
  name: string;
  subject: Measure;
  baseline: Measure;
  notes: string;
}

const baselineRequests = (requests: Workload['requests']) => requests.map((r) => ({ ...r, method: 'GET' as const }));

/** Subject against the bare node:http baseline, alternated, medians. */
async function versusBaseline({ name, args, requests, expect, notes = '', warm, tls }: Subject): Promise<Row> {
  const subject: Measure[] = [];
  const baseline: Measure[] = [];
  const scheme = tls === undefined ? 'http' : 'https';
  const baselineArgs = tls === undefined ? [BASELINE] : [BASELINE, tls.cert, tls.key];
  for (let round = 0; round < ROUNDS; round++) {
    baseline.push(await withServer(baselineArgs, (s) => load(s, baselineRequests(requests), [3], DURATION, scheme)));
    subject.push(await withServer(args(), async (s) => (await warm?.(s), load(s, requests, expect, DURATION, scheme))));
  }
  const row = { name, subject: medianMeasure(subject), baseline: medianMeasure(baseline), notes };
  print(row);
  return row;
}

const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

function print(row: Row): void {
  const { subject: s, baseline: b } = row;
  console.log(
    `${row.name.padEnd(16)} ${fmt(s.rps, 0).padStart(7)} rps  p50 ${fmt(s.p50)} p99 ${fmt(s.p99)} ms  cpu ${fmt(s.cpuUs)} µs/req (sys ${fmt(s.sysUs)})  rss ${fmt(s.rssMb, 0)} MB` +
      `  | baseline ${fmt(b.rps, 0)} rps, ${fmt(b.cpuUs)} µs/req (sys ${fmt(b.sysUs)})  | throughput ×${fmt(s.rps / b.rps, 2)}  cpu ×${fmt(s.cpuUs / b.cpuUs, 2)}` +
      (s.unexpected > 0 ? `  (${s.unexpected} unexpected answers)` : '') + (row.notes ? `  ${row.notes}` : ''),
  );
}

/** GET `path` from a server with `headers`; resolves with the answer's head once its body is read. */
async function fetchHead(port: number, path: string, headers: Record<string, string>): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res));
    }).on('error', reject).end();
  });
}

/** The longest event-loop stall since the last scrape (prom-client resets it on each), in ms. */
function lagMax(metrics: string): number {
  return Number(/^gateway_nodejs_eventloop_lag_max_seconds (\S+)/m.exec(metrics)?.[1]) * 1000;
}

async function metricsText(s: ServerProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port: s.adminPort!, path: '/metrics' }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject).end();
  });
}

/** python-page: a third HTML, a third JSON, a third revalidations that get 304. */
async function pythonSubject(projects: number): Promise<Subject> {
  const python = writeManifest(pythonRules(projects));
  const etags = await withServer(gatewayArgs(python), (s) => Promise.all([0, 1, 2].map(async (j) => String((await fetchHead(s.port, `/simple/proj${j * 97}/`, { host: 'py.example.com', accept: 'text/html' })).headers.etag))));
  const requests: Workload['requests'] = Array.from({ length: 600 }, (_, k) => {
    const host = 'py.example.com';
    const headers: Record<string, string> = { host, accept: k % 3 === 1 ? 'application/vnd.pypi.simple.v1+json' : 'text/html' };
    if (k % 3 !== 2) return { path: `/simple/proj${(k * 97) % projects}/`, headers };
    const j = Math.floor(k / 3) % 3;
    headers['if-none-match'] = etags[j];
    return { path: `/simple/proj${j * 97}/`, headers };
  });
  return { key: 'python-page', name: 'python-page', args: (extra) => gatewayArgs(python, extra), requests, expect: [2, 3], notes: '(HTML, JSON and 304 revalidation, one third each)' };
}

/**
 * npm-tarball: tarball redirects of npm-v1 rules whose documents are cached
 * (as they are once a client has read them), from a stand-in registry that
 * is asked only while each server warms up.
 */
async function npmSubject(packages: number): Promise<Subject> {
  const registry = createServer((req, res) => {
    const name = (req.url ?? '').slice(1);
    if (/^npkg\d+$/.test(name)) res.writeHead(200, { 'content-type': 'application/json' }).end(npmDocument(name));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
  registry.unref();
  const w = npmRules(packages, `http://127.0.0.1:${(registry.address() as AddressInfo).port}`);
  const file = writeManifest(w.manifest);
  // Each package's document once, 32 at a time.
  const warm = async (s: ServerProcess) => {
    let next = 0;
    const one = async (): Promise<void> => {
      for (let i = next++; i < packages; i = next++) await fetchHead(s.port, `/npkg${i}`, { host: 'npm.example.com' });
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, one));
  };
  const notes = `(${packages} packages, their documents cached)`;
  return { key: 'npm-tarball', name: 'npm-tarball', args: (extra) => gatewayArgs(file, ['--npm-cache-ttl', '3600000', ...(extra ?? [])]), requests: w.requests, expect: [3], notes, warm };
}

/** A blob upstream: where it listens, how to download from it directly, what the gateway needs to reach it, and how to stop it. */
interface BlobUpstream {
  readonly url: string;
  readonly download: (path: string) => Promise<number>;
  readonly env: Record<string, string>;
  close(): void;
}

/** Downloads `path` with `get`, to the byte; resolves with MB/s. */
function timedDownload(get: (options: RequestOptions, onResponse: (res: IncomingMessage) => void) => ClientRequest, options: RequestOptions, size: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const start = performance.now();
    get(options, (res) => {
      let got = 0;
      res.on('data', (c: Buffer) => (got += c.length));
      res.on('end', () => (got === size ? resolve(size / 1048576 / ((performance.now() - start) / 1000)) : reject(new Error(`short body ${got}`))));
    })
      .on('error', reject)
      .end();
  });
}

async function plainUpstream(size: number): Promise<BlobUpstream> {
  const upstream = createServer((_req, res) => sendBlob(res, size));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    download: (path) => timedDownload(httpRequest, { host: '127.0.0.1', port, path }, size),
    env: {},
    close: () => upstream.close(),
  };
}

/** A TLS upstream in its own process, with a certificate from a CA made for the run, which the gateway is told to trust. */
async function tlsUpstream(size: number): Promise<BlobUpstream> {
  const ca = makeCerts(join(work, 'certs'));
  const child = spawn(process.execPath, [new URL('./lib/tls-blob-upstream.ts', import.meta.url).pathname, ca.key, ca.cert, String(size)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`TLS upstream exited with ${code}`)));
    createInterface({ input: child.stdout! }).once('line', (line) => resolve(Number(line)));
  });
  const trusted = readFileSync(ca.caCert);
  return {
    url: `https://127.0.0.1:${port}`,
    download: (path) => timedDownload(httpsRequest, { host: '127.0.0.1', port, path, ca: trusted }, size),
    env: { NODE_EXTRA_CA_CERTS: ca.caCert },
    close: () => child.kill(),
  };
}

/**
 * proxy-blob: bytes through the registry proxy against the same bytes
 * direct; proxy-blob-tls the same from an upstream over TLS, as every
 * public registry is reached.
 */
async function proxyBlob(key: 'proxy-blob' | 'proxy-blob-tls'): Promise<string[]> {
  const tls = key === 'proxy-blob-tls';
  const size = (quick ? 64 : 1024) * 1048576;
  const upstream = tls ? await tlsUpstream(size) : await plainUpstream(size);
  const manifest = writeManifest({ rules: [{ type: 'docker-v1', domain: 'cr.example.com', 'package-id': 'p', 'repository-name': 'org/big', registry: 'blob.registry', 'always-proxy': true }] });
  const path = '/v2/org/big/blobs/sha256:x';
  const direct: number[] = [];
  const proxied: number[] = [];
  const growth: number[] = [];
  // The gateway's own CPU per GiB: what the proxy costs, whichever process limits the throughput.
  const cpuPerGiB: number[] = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      direct.push(await upstream.download(path));
      await withServer(
        gatewayArgs(manifest, ['--upstream', `blob.registry=${upstream.url}`]),
        async (s) => {
          const before = s.rss();
          let peak = before;
          const sampler = setInterval(() => (peak = Math.max(peak, s.rss())), 50);
          const cpu0 = s.cpuSeconds();
          proxied.push(await timedDownload(httpRequest, { host: '127.0.0.1', port: s.port, path, headers: { host: 'cr.example.com' } }, size));
          cpuPerGiB.push((s.cpuSeconds() - cpu0) / (size / 1073741824));
          clearInterval(sampler);
          growth.push((peak - before) / 1048576);
        },
        upstream.env,
      );
    }
  } finally {
    upstream.close();
  }
  const what = `${size / 1048576} MiB${tls ? ' over TLS' : ''}`;
  const cpu = `gateway CPU ${fmt(median(cpuPerGiB), 2)} s per GiB`;
  console.log(`${key.padEnd(16)} ${what}: through the gateway ${fmt(median(proxied), 0)} MB/s, direct ${fmt(median(direct), 0)} MB/s, ratio ×${fmt(median(proxied) / median(direct), 2)}; gateway RSS growth ${fmt(median(growth), 0)} MB; ${cpu}`);
  const target = tls ? '' : ' (target ≥ 0.8)';
  const rssTarget = tls ? '' : ' (target < 50)';
  return [`| ${key} | ${size / 1048576} MiB blob${tls ? ' over TLS' : ''}: ${fmt(median(proxied), 0)} MB/s through the gateway vs ${fmt(median(direct), 0)} MB/s direct | throughput ×${fmt(median(proxied) / median(direct), 2)}${target} | RSS growth ${fmt(median(growth), 0)} MB${rssTarget} | ${cpu} |`];
}

/**
 * reload-100k: compile time, longest event-loop stall and p99 while
 * reloading under load; medians over the rounds, and the worst stall seen.
 * Two reloads per round, under the same load: one rule changed (a reload
 * compiles only the domains whose rules changed), then every rule changed
 * (every domain compiled again: the whole manifest's compile time).
 */
async function reloadUnderLoad(count: number): Promise<string[]> {
  const w = fileRules(count);
  const rounds: { startup: number; compile: number; one: number; stall: number; steadyStall: number; steady: number; during: number; unexpected: number; rss: number }[] = [];
  const reload = async (s: ServerProcess, file: string, rules: Record<string, unknown>[]) => {
    const seen = s.logs.length;
    writeFileSync(file, JSON.stringify({ rules }));
    return (await s.waitForLog((l) => l.msg === 'manifest reloaded' && s.logs.indexOf(l) >= seen, 60_000)).compileMs as number;
  };
  for (let round = 0; round < ROUNDS; round++) {
    const file = writeManifest(w.manifest);
    await withServer(gatewayArgs(file), async (s) => {
      const startup = (await s.waitForLog((l) => l.msg === 'manifest loaded')).compileMs as number;
      await metricsText(s); // resets the event-loop maximum (start-up included)
      const steady = await load(s, w.requests, [3], quick ? 1 : 4);
      // The same load without a reload: what the machine's own stalls are (and a reset).
      const steadyStall = lagMax(await metricsText(s));
      const during = load(s, w.requests, [3], quick ? 3 : 8);
      await new Promise((r) => setTimeout(r, 500));
      const one = await reload(s, file, w.manifest.rules.map((r, i) => (i === 0 ? { ...r, 'outgoing-url': 'https://changed.example/{version}/{os}' } : r)));
      const every = await reload(s, file, w.manifest.rules.map((r) => ({ ...r, 'outgoing-url': `${String(r['outgoing-url'])}?changed` })));
      const loaded = await during;
      const stall = lagMax(await metricsText(s));
      rounds.push({ startup, compile: every, one, stall, steadyStall, steady: steady.p99, during: loaded.p99, unexpected: loaded.unexpected, rss: s.peakRss() / 1048576 });
    });
  }
  const m = (k: keyof (typeof rounds)[number]) => median(rounds.map((r) => r[k]));
  const worst = Math.max(...rounds.map((r) => r.stall));
  const unexpected = rounds.reduce((sum, r) => sum + r.unexpected, 0);
  const ratio = median(rounds.map((r) => r.during / r.steady));
  const name = `reload-${count / 1000}k`;
  console.log(
    `${name.padEnd(16)} start-up compile ${fmt(m('startup'), 0)} ms, reload compile ${fmt(m('compile'), 0)} ms (one rule changed: ${fmt(m('one'), 0)} ms), longest event-loop stall ${fmt(m('stall'))} ms (worst ${fmt(worst)}; under the same load without a reload ${fmt(m('steadyStall'))}), ` +
      `p99 steady ${fmt(m('steady'))} ms vs during reload ${fmt(m('during'))} ms (medians; ratio within each round, median ×${fmt(ratio, 2)}), ${unexpected} unexpected answers, peak RSS ${fmt(m('rss'), 0)} MB`,
  );
  return [
    `| ${name} | compile of every rule ${fmt(m('compile'), 0)} ms (start-up ${fmt(m('startup'), 0)} ms; one rule changed ${fmt(m('one'), 0)} ms) | longest stall ${fmt(m('stall'))} ms, worst of ${rounds.length} rounds ${fmt(worst)} ms (target ≤ 50; ${fmt(m('steadyStall'))} ms under the same load without a reload) | p99 ${fmt(m('during'))} ms during vs ${fmt(m('steady'))} ms steady (medians); ratio within each round, median ×${fmt(ratio, 2)} (target < 2) | peak RSS ${fmt(m('rss'), 0)} MB |`,
  ];
}

/**
 * instructions: what a server executes per request, counted by callgrind.
 * Counts of the same code differ by up to 5 % between runs (with the load,
 * as the number of requests one turn of the event loop finds, and with the
 * JIT's timing), where CPU time per request moves by 10-20 %. Each server is
 * warmed up uncounted, then counted over a fixed number of requests. The
 * main thread's count is the headline: V8's helper threads add optimizing
 * compiles, whose timing varies with the warm-up, and concurrent garbage
 * collection; their count is shown apart. Valgrind runs a process about 50
 * times slower, so the gateway's timed work would be counted about 50 times
 * over per request: its manifest check (a stat every second; every tenth
 * one reads and hashes the whole manifest) is turned off here. The CPU
 * table counts it. The baseline answers file-10's requests. Two servers are
 * counted at a time.
 */
async function instructions(subjects: Subject[], baselineWork: Workload['requests']): Promise<{ lines: string[]; failed: string[] }> {
  if (spawnSync('valgrind', ['--version']).error !== undefined) {
    console.log('instructions     valgrind is not installed (apt-get install valgrind): not measured');
    return { lines: ['| instructions | valgrind is not installed: not measured | | |'], failed: [] };
  }
  const count = async ({ name, args, requests, expect }: Omit<Subject, 'key'>) => {
    const out = join(mkdtempSync(join(work, 'callgrind-')), 'out');
    const server = await startServer(args(['--watch-interval', '3600000']), {}, [
      ...['valgrind', '-q', '--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', '--smc-check=all-non-file'],
      `--callgrind-out-file=${out}`,
    ]);
    // vgdb reaches an idle process through ptrace; where that is not allowed it would wait for the process to run.
    const vgdb = (on: boolean) => execFileSync('vgdb', [`--pid=${server.child.pid}`, 'instrumentation', on ? 'on' : 'off'], { stdio: 'ignore', timeout: 30_000 });
    let answered: { total: number; unexpected: number };
    try {
      await fire(server, requests, expect, { amount: UNCOUNTED });
      vgdb(true);
      answered = await fire(server, requests, expect, { amount: COUNTED });
      vgdb(false);
    } finally {
      await server.stop();
    }
    // One file per thread: out-01 is the main thread.
    let main = NaN;
    let all = 0;
    for (const file of readdirSync(dirname(out))) {
      const n = Number(/^totals: (\d+)/m.exec(readFileSync(join(dirname(out), file), 'utf8'))?.[1] ?? 0);
      all += n;
      if (file === 'out-01') main = n;
    }
    return { name, main: main / answered.total, helpers: (all - main) / answered.total, unexpected: answered.unexpected };
  };
  const servers = [{ name: 'baseline', args: () => [BASELINE], requests: baselineRequests(baselineWork), expect: [3] }, ...subjects];
  const counts: Awaited<ReturnType<typeof count>>[] = [];
  let taken = 0;
  const next = async (): Promise<void> => {
    for (let i = taken++; i < servers.length; i = taken++) counts[i] = await count(servers[i]);
  };
  await Promise.all([next(), next()]);
  const base = counts[0];
  const lines: string[] = [];
  for (const { name, main, helpers, unexpected } of counts) {
    const ratio = `×${fmt(main / base.main, 2)}`;
    const bad = unexpected > 0 ? ` (${unexpected} unexpected answers)` : '';
    console.log(`instructions     ${name.padEnd(16)} main thread ${fmt(main, 0).padStart(7)} per request  ${ratio}  helper threads ${fmt(helpers, 0)}${bad}`);
    lines.push(`| ${name} | ${fmt(main, 0)} | ${ratio}${bad} | ${fmt(helpers, 0)} |`);
  }
  return { lines, failed: counts.filter((c) => c.unexpected > 0 || !Number.isFinite(c.main)).map((c) => `instructions of ${c.name}`) };
}

/** workers: --workers 2 against 1 worker, same manifest and load. */
async function workers(count: number): Promise<string[]> {
  const w = fileRules(count);
  const file = writeManifest(w.manifest);
  const one: Measure[] = [];
  const two: Measure[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    one.push(await withServer(gatewayArgs(file), (s) => load(s, w.requests, [3])));
    two.push(await withServer(gatewayArgs(file, ['--workers', '2']), (s) => load(s, w.requests, [3])));
  }
  const a = medianMeasure(one);
  const b = medianMeasure(two);
  console.log(`workers          1 worker ${fmt(a.rps, 0)} rps ${fmt(a.cpuUs)} µs/req; 2 workers ${fmt(b.rps, 0)} rps ${fmt(b.cpuUs)} µs/req (×${fmt(b.rps / a.rps, 2)} throughput)`);
  return [`| workers | 1 worker: ${fmt(a.rps, 0)} rps, p99 ${fmt(a.p99)} ms, ${fmt(a.cpuUs)} µs/req | 2 workers: ${fmt(b.rps, 0)} rps, p99 ${fmt(b.p99)} ms, ${fmt(b.cpuUs)} µs/req | throughput ×${fmt(b.rps / a.rps, 2)} | 2 cores shared with the load generator: no gain expected |`];
}

async function main(): Promise<void> {
  console.log(`bench: node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${quick ? 'quick' : 'full'} mode, ${DURATION}s × ${ROUNDS} rounds, ${CONNECTIONS} connections`);
  const sizes = { k10: Math.round(10_000 * SCALE), k100: Math.round(100_000 * SCALE) };
  const file10 = fileRules(10);
  // A subject is built for its own row, and for the instruction counts (in
  // quick mode, file-10's only).
  const wanted = (key: string) => selected(key) || (selected('instructions') && (!quick || key === 'file-10'));
  const manifestSubject = (key: string, name: string, w: Workload): Subject => {
    const file = writeManifest(w.manifest);
    return { key, name, args: (extra) => gatewayArgs(file, extra), requests: w.requests, expect: [3] };
  };
  const subjects: Subject[] = [];
  if (wanted('floor')) {
    const notes = '(the baseline + request id + analytics line; no routing)';
    subjects.push({ key: 'floor', name: 'floor', args: () => [FLOOR, join(logs, 'floor.jsonl')], requests: file10.requests, expect: [3], notes });
  }
  if (wanted('file-10')) subjects.push(manifestSubject('file-10', 'file-10', file10));
  if (selected('file-10-tls')) {
    const tls = makeCerts(join(work, 'listener-certs'));
    const plain = manifestSubject('file-10-tls', 'file-10-tls', file10);
    subjects.push({ ...plain, args: () => plain.args(['--tls-cert', tls.cert, '--tls-key', tls.key]), tls, notes: '(over TLS, against node:https)' });
  }
  if (wanted('file-10k')) subjects.push(manifestSubject('file-10k', `file-${sizes.k10 / 1000}k`, fileRules(sizes.k10)));
  if (wanted('file-100k')) subjects.push(manifestSubject('file-100k', `file-${sizes.k100 / 1000}k`, fileRules(sizes.k100)));
  if (wanted('docker-redirect')) subjects.push(manifestSubject('docker-redirect', 'docker-redirect', dockerRules(sizes.k10)));
  if (wanted('python-page')) subjects.push(await pythonSubject(sizes.k10));
  // Not counted under callgrind: its warm-up (a thousand documents fetched by a worker thread) would take minutes there.
  const npm = selected('npm-tarball') ? await npmSubject(Math.round(1000 * SCALE)) : null;
  const rows: Row[] = [];
  for (const subject of subjects) if (selected(subject.key)) rows.push(await versusBaseline(subject));
  if (npm !== null) rows.push(await versusBaseline(npm));
  const extra = [
    ...(selected('proxy-blob') ? await proxyBlob('proxy-blob') : []),
    ...(selected('proxy-blob-tls') ? await proxyBlob('proxy-blob-tls') : []),
    ...(selected('reload-100k') ? await reloadUnderLoad(sizes.k100) : []),
    ...(selected('workers') ? await workers(sizes.k10) : []),
  ];
  const counted = selected('instructions') ? await instructions(subjects.filter((s) => s.tls === undefined && (!quick || s.key === 'file-10')), file10.requests) : null;

  const table = [
    '| scenario | rps | p50 ms | p99 ms | CPU µs/req | of it system | peak RSS MB | baseline rps | baseline CPU µs/req | of it system | throughput vs baseline | CPU vs baseline |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(({ name, subject: s, baseline: b, notes }) =>
      `| ${name}${notes ? ' ' + notes : ''} | ${fmt(s.rps, 0)} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.cpuUs)} | ${fmt(s.sysUs)} | ${fmt(s.rssMb, 0)} | ${fmt(b.rps, 0)} | ${fmt(b.cpuUs)} | ${fmt(b.sysUs)} | ×${fmt(s.rps / b.rps, 2)} | ×${fmt(s.cpuUs / b.cpuUs, 2)} |`),
    '',
    '| scenario | measured | | | |',
    '|---|---|---|---|---|',
    ...extra,
    ...(counted === null
      ? []
      : ['', `| instructions per request (callgrind; ${COUNTED} requests counted after ${UNCOUNTED} uncounted) | main thread | main thread vs baseline | helper threads |`, '|---|---|---|---|', ...counted.lines]),
  ].join('\n');
  const bad = [...rows.filter((r) => r.subject.unexpected > 0 || r.subject.total === 0).map((r) => r.name), ...(counted?.failed ?? [])];
  if (outFile !== null) {
    const header = `# Benchmark results\n\nRun: ${new Date().toISOString()} · Node ${process.version} · ${platform()} ${release()} · ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'} · ${Math.round(totalmem() / 2 ** 30)} GiB · ${quick ? 'quick' : 'full'} mode (${DURATION} s × ${ROUNDS} rounds, medians, ${CONNECTIONS} connections)\n\n`;
    // Keep the hand-written reading below the marker across runs.
    const MARK = '<!-- reading: kept by bench/run.ts across runs -->';
    const previous = existsSync(outFile) ? readFileSync(outFile, 'utf8') : '';
    const reading = previous.includes(MARK) ? previous.slice(previous.indexOf(MARK)) : MARK + '\n';
    writeFileSync(outFile, header + table + '\n\n' + reading);
    console.log(`wrote ${outFile}`);
  }
  if (bad.length > 0) {
    console.error(`unexpected answers in: ${bad.join(', ')}`);
    process.exitCode = 1;
  }
}

await main();
