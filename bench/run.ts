/**
 * `npm run bench [-- --quick] [-- --out FILE] [-- --only NAME,...]`: named scenarios, each in
 * fresh processes, load from autocannon on 127.0.0.1, bounded in time.
 *
 * Every scenario is measured against a baseline in the same run, alternated
 * (A B A B ...), and reported as the median of the rounds: requests per
 * second, p50/p99 latency, server CPU time per request (user + sys of the
 * server's process tree / requests served: it holds up even when the load
 * generator, which shares the machine, is the bottleneck), and peak RSS.
 */
import { existsSync, readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { cpus, totalmem, tmpdir, platform, release } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import autocannon from 'autocannon';
import { startServer, type ServerProcess } from './lib/server-process.ts';
import { sendBlob } from './lib/blob-stream.ts';
import { dockerRules, fileRules, pythonRules, type Workload } from './lib/manifests.ts';
import { NODE_FLAGS } from '../src/node-flags.ts';

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
const work = mkdtempSync(join(tmpdir(), 'gw-bench-'));
const logs = mkdtempSync(join(tmpdir(), 'gw-bench-analytics-'));
/** The launcher npm start and the systemd unit run, with the same node flags. */
const CLI = new URL('../bin/scarf-gateway.js', import.meta.url).pathname;
const BASELINE = new URL('./baseline-server.ts', import.meta.url).pathname;
const FLOOR = new URL('./floor-server.ts', import.meta.url).pathname;

interface Measure {
  rps: number;
  p50: number;
  p99: number;
  cpuUs: number;
  rssMb: number;
  total: number;
  unexpected: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function medianMeasure(ms: Measure[]): Measure {
  const pick = (k: keyof Measure) => median(ms.map((m) => m[k]));
  return { rps: pick('rps'), p50: pick('p50'), p99: pick('p99'), cpuUs: pick('cpuUs'), rssMb: pick('rssMb'), total: pick('total'), unexpected: pick('unexpected') };
}

/** One load run against a running server. */
async function load(server: ServerProcess, requests: Workload['requests'], expect: readonly number[], seconds = DURATION): Promise<Measure> {
  const cpu0 = server.cpuSeconds();
  const result = await autocannon({
    url: `http://127.0.0.1:${server.port}`,
    connections: CONNECTIONS,
    duration: seconds,
    requests: requests as autocannon.Request[],
  });
  const cpu = server.cpuSeconds() - cpu0;
  const total = result.requests.total;
  // Answers of the expected status classes (2xx, 3xx); anything else is reported.
  const counts = result as unknown as Record<string, number>;
  const expected = expect.reduce((sum, cls) => sum + (counts[`${cls}xx`] ?? 0), 0);
  return {
    rps: total / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuUs: total === 0 ? NaN : (cpu / total) * 1e6,
    rssMb: server.peakRss() / 1048576,
    total,
    unexpected: total - expected + result.errors,
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

/** Run `fn` on a fresh process started with `args`, then stop it. */
async function withServer<T>(args: string[], fn: (s: ServerProcess) => Promise<T>): Promise<T> {
  const server = await startServer(args);
  try {
    return await fn(server);
  } finally {
    await server.stop();
  }
}

interface Row {
  name: string;
  subject: Measure;
  baseline: Measure;
  notes: string;
}

/** Subject against the bare node:http baseline, alternated, medians. */
async function versusBaseline(name: string, args: string[], requests: Workload['requests'], expect: readonly number[], notes = ''): Promise<Row> {
  const subject: Measure[] = [];
  const baseline: Measure[] = [];
  const baselineRequests = requests.map((r) => ({ ...r, method: 'GET' as const }));
  for (let round = 0; round < ROUNDS; round++) {
    baseline.push(await withServer([BASELINE], (s) => load(s, baselineRequests, [3])));
    subject.push(await withServer(args, (s) => load(s, requests, expect)));
  }
  const row = { name, subject: medianMeasure(subject), baseline: medianMeasure(baseline), notes };
  print(row);
  return row;
}

const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : 'n/a');

function print(row: Row): void {
  const { subject: s, baseline: b } = row;
  console.log(
    `${row.name.padEnd(16)} ${fmt(s.rps, 0).padStart(7)} rps  p50 ${fmt(s.p50)} p99 ${fmt(s.p99)} ms  cpu ${fmt(s.cpuUs)} µs/req  rss ${fmt(s.rssMb, 0)} MB` +
      `  | baseline ${fmt(b.rps, 0)} rps, ${fmt(b.cpuUs)} µs/req  | throughput ×${fmt(s.rps / b.rps, 2)}  cpu ×${fmt(s.cpuUs / b.cpuUs, 2)}` +
      (s.unexpected > 0 ? `  (${s.unexpected} unexpected answers)` : '') + (row.notes ? `  ${row.notes}` : ''),
  );
}

async function fetchEtag(port: number, path: string, accept: string): Promise<string> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, headers: { host: 'py.example.com', accept } }, (res) => {
      res.resume();
      resolve(String(res.headers.etag));
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
async function pythonPage(projects: number): Promise<Row> {
  const python = writeManifest(pythonRules(projects));
  const etags = await withServer(gatewayArgs(python), (s) => Promise.all([0, 1, 2].map((j) => fetchEtag(s.port, `/simple/proj${j * 97}/`, 'text/html'))));
  const pyRequests: Workload['requests'] = Array.from({ length: 600 }, (_, k) => {
    const host = 'py.example.com';
    const headers: Record<string, string> = { host, accept: k % 3 === 1 ? 'application/vnd.pypi.simple.v1+json' : 'text/html' };
    if (k % 3 !== 2) return { path: `/simple/proj${(k * 97) % projects}/`, headers };
    const j = Math.floor(k / 3) % 3;
    headers['if-none-match'] = etags[j];
    return { path: `/simple/proj${j * 97}/`, headers };
  });
  return versusBaseline('python-page', gatewayArgs(python), pyRequests, [2, 3], '(HTML, JSON and 304 revalidation, one third each)');
}

/** proxy-blob: bytes through the registry proxy against the same bytes direct. */
async function proxyBlob(): Promise<string[]> {
  const size = (quick ? 64 : 1024) * 1048576;
  const upstream = createServer((_req, res) => sendBlob(res, size));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upPort = (upstream.address() as AddressInfo).port;
  const download = (port: number, path: string, host: string) =>
    new Promise<number>((resolve, reject) => {
      const start = performance.now();
      httpRequest({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
        let got = 0;
        res.on('data', (c: Buffer) => (got += c.length));
        res.on('end', () => (got === size ? resolve((size / 1048576) / ((performance.now() - start) / 1000)) : reject(new Error(`short body ${got}`))));
      }).on('error', reject).end();
    });
  const manifest = writeManifest({ rules: [{ type: 'docker-v1', domain: 'cr.example.com', 'package-id': 'p', 'repository-name': 'org/big', registry: 'blob.registry', 'always-proxy': true }] });
  const direct: number[] = [];
  const proxied: number[] = [];
  const growth: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    direct.push(await download(upPort, '/v2/org/big/blobs/sha256:x', 'x'));
    await withServer(gatewayArgs(manifest, ['--upstream', `blob.registry=http://127.0.0.1:${upPort}`]), async (s) => {
      const before = s.rss();
      let peak = before;
      const sampler = setInterval(() => (peak = Math.max(peak, s.rss())), 50);
      proxied.push(await download(s.port, '/v2/org/big/blobs/sha256:x', 'cr.example.com'));
      clearInterval(sampler);
      growth.push((peak - before) / 1048576);
    });
  }
  upstream.close();
  const line = `proxy-blob       ${size / 1048576} MiB: through the gateway ${fmt(median(proxied), 0)} MB/s, direct ${fmt(median(direct), 0)} MB/s, ratio ×${fmt(median(proxied) / median(direct), 2)}; gateway RSS growth ${fmt(median(growth), 0)} MB`;
  console.log(line);
  return [`| proxy-blob | ${size / 1048576} MiB blob: ${fmt(median(proxied), 0)} MB/s through the gateway vs ${fmt(median(direct), 0)} MB/s direct | throughput ×${fmt(median(proxied) / median(direct), 2)} (target ≥ 0.8) | RSS growth ${fmt(median(growth), 0)} MB (target < 50) |`];
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
      `p99 steady ${fmt(m('steady'))} ms vs during reload ${fmt(m('during'))} ms (×${fmt(ratio, 2)}), ${unexpected} unexpected answers, peak RSS ${fmt(m('rss'), 0)} MB`,
  );
  return [
    `| ${name} | compile of every rule ${fmt(m('compile'), 0)} ms (start-up ${fmt(m('startup'), 0)} ms; one rule changed ${fmt(m('one'), 0)} ms) | longest stall ${fmt(m('stall'))} ms, worst of ${rounds.length} rounds ${fmt(worst)} ms (target ≤ 50; ${fmt(m('steadyStall'))} ms under the same load without a reload) | p99 ${fmt(m('during'))} ms during vs ${fmt(m('steady'))} ms steady, ×${fmt(ratio, 2)} (target < 2) | peak RSS ${fmt(m('rss'), 0)} MB |`,
  ];
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
  const rows: Row[] = [];
  const file10 = fileRules(10);
  if (selected('floor')) {
    rows.push(await versusBaseline('floor', [FLOOR, join(logs, 'floor.jsonl')], file10.requests, [3], '(the baseline + request id + analytics line; no routing)'));
  }
  if (selected('file-10')) rows.push(await versusBaseline('file-10', gatewayArgs(writeManifest(file10.manifest)), file10.requests, [3]));
  if (selected('file-10k')) {
    const file10k = fileRules(sizes.k10);
    rows.push(await versusBaseline(`file-${sizes.k10 / 1000}k`, gatewayArgs(writeManifest(file10k.manifest)), file10k.requests, [3]));
  }
  if (selected('file-100k')) {
    const file100k = fileRules(sizes.k100);
    rows.push(await versusBaseline(`file-${sizes.k100 / 1000}k`, gatewayArgs(writeManifest(file100k.manifest)), file100k.requests, [3]));
  }
  if (selected('docker-redirect')) {
    const docker = dockerRules(sizes.k10);
    rows.push(await versusBaseline('docker-redirect', gatewayArgs(writeManifest(docker.manifest)), docker.requests, [3]));
  }
  if (selected('python-page')) rows.push(await pythonPage(sizes.k10));
  const extra = [
    ...(selected('proxy-blob') ? await proxyBlob() : []),
    ...(selected('reload-100k') ? await reloadUnderLoad(sizes.k100) : []),
    ...(selected('workers') ? await workers(sizes.k10) : []),
  ];

  const table = [
    '| scenario | rps | p50 ms | p99 ms | CPU µs/req | peak RSS MB | baseline rps | baseline CPU µs/req | throughput vs baseline | CPU vs baseline |',
    '|---|---|---|---|---|---|---|---|---|---|',
    ...rows.map(({ name, subject: s, baseline: b, notes }) =>
      `| ${name}${notes ? ' ' + notes : ''} | ${fmt(s.rps, 0)} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.cpuUs)} | ${fmt(s.rssMb, 0)} | ${fmt(b.rps, 0)} | ${fmt(b.cpuUs)} | ×${fmt(s.rps / b.rps, 2)} | ×${fmt(s.cpuUs / b.cpuUs, 2)} |`),
    '',
    '| scenario | measured | | | |',
    '|---|---|---|---|---|',
    ...extra,
  ].join('\n');
  const bad = rows.filter((r) => r.subject.unexpected > 0 || r.subject.total === 0);
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
    console.error(`unexpected answers in: ${bad.map((r) => r.name).join(', ')}`);
    process.exitCode = 1;
  }
}

await main();
