// SPEC §10 hot reload and operations, on the real process: reload under
// load, watcher torture, SIGHUP, deletion, graceful stop of a proxied
// stream, and workers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync, openSync, writeSync, closeSync, ftruncateSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { Agent, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';

const D = 'reload.test';
const manifestFor = (version: number) =>
  JSON.stringify({ rules: [{ type: 'file-v1', domain: D, 'package-id': 'p', 'incoming-path': '/f', 'outgoing-url': `https://v${version}.example/f` }] }, null, 2);
const schemaInvalid = (n: number) => JSON.stringify({ rules: [{ type: 'file-v1', domain: D, 'incoming-path': '/f', note: n }] });
const truncated = (version: number) => manifestFor(version).slice(0, 40);

/**
 * A ConfigMap-style folder: `manifest.json` → `..data/manifest.json`,
 * `..data` → `..v<N>`. Returns the writers for every kind of change.
 */
function configMapDir(initial: string) {
  const dir = tempDir('gw-reload-');
  let n = 0;
  const swap = (text: string) => {
    const v = `..v${++n}`;
    mkdirSync(join(dir, v));
    writeFileSync(join(dir, v, 'manifest.json'), text);
    symlinkSync(v, join(dir, '..data_tmp'));
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    // Make sure the manifest path is the link again (a rename may have replaced it).
    symlinkSync('..data/manifest.json', join(dir, 'manifest.tmp'));
    renameSync(join(dir, 'manifest.tmp'), join(dir, 'manifest.json'));
  };
  swap(initial);
  const path = join(dir, 'manifest.json');
  return {
    dir,
    path,
    swap,
    /** Truncate and write, through the link, in two pieces (a half-written file). */
    inPlace(text: string) {
      const fd = openSync(path, 'r+');
      ftruncateSync(fd, 0);
      const half = Math.floor(text.length / 2);
      writeSync(fd, text.slice(0, half), 0);
      writeSync(fd, text.slice(half), half);
      closeSync(fd);
    },
    /** An editor's save: write a temporary file, rename it over the manifest. */
    rename(text: string) {
      writeFileSync(join(dir, 'manifest.json.swp'), text);
      renameSync(join(dir, 'manifest.json.swp'), path);
    },
  };
}

/** A backend that sends the start of its body, and the rest 1.5 s later: a request in flight when the gateway is told to stop. */
async function slowUpstream() {
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write('start-');
    setTimeout(() => res.end('end'), 1500);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  return { upstream, base: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}` };
}

async function metric(gw: GatewayProcess, name: string): Promise<number> {
  const text = (await request(gw.adminPort, { path: '/metrics' })).text;
  const m = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\S+)$`, 'm').exec(text);
  return m === null ? NaN : Number(m[1]);
}

async function locationNow(gw: GatewayProcess): Promise<string | undefined> {
  return (await request(gw.port, { path: '/f', host: D })).headers.location as string | undefined;
}

async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await check()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`not within ${ms} ms: ${what}`);
}

test('reload under load: 16 keep-alive clients, a rewrite every 200 ms for 15 s, no request fails', { timeout: 60_000 }, async () => {
  const cm = configMapDir(manifestFor(0));
  const gw = await startGateway({ manifestPath: cm.path });
  try {
    const valid = new Set(['https://v0.example/f']);
    let bad = 0;
    let version = 0;
    let stop = false;
    const failures: string[] = [];
    const answers = new Set<string>();
    let requests = 0;
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const client = async () => {
      while (!stop) {
        await new Promise<void>((resolve) => {
          const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/f', headers: { host: D }, agent }, (res) => {
            res.resume();
            requests++;
            if (res.statusCode !== 307) failures.push(`status ${res.statusCode}`);
            else answers.add(String(res.headers.location));
            res.on('end', resolve);
          });
          req.on('error', (e) => {
            failures.push(e.message);
            resolve();
          });
          req.end();
        });
      }
    };
    const clients = Array.from({ length: 16 }, client);
    const kinds = ['inPlace', 'rename', 'swap', 'truncated', 'invalid'] as const;
    const started = Date.now();
    for (let i = 0; Date.now() - started < 15_000; i++) {
      const kind = kinds[i % kinds.length];
      if (kind === 'truncated') {
        // Not counted: a cut-off manifest is reported only once it has stayed
        // as it is for 2 s (its writer may be pausing), and the next write
        // comes 200 ms later.
        cm.rename(truncated(++version));
      } else if (kind === 'invalid') {
        cm.swap(schemaInvalid(i));
        bad++;
      } else {
        const text = manifestFor(++version);
        valid.add(`https://v${version}.example/f`);
        cm[kind](text);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const last = ++version;
    cm.swap(manifestFor(last));
    valid.add(`https://v${last}.example/f`);
    const took = await eventually(async () => (await locationNow(gw)) === `https://v${last}.example/f`, 2000, 'the last valid manifest serves');
    stop = true;
    await Promise.all(clients);
    agent.destroy();
    assert.deepEqual(failures, [], 'not one request failed');
    assert.ok(requests > 1000, `requests: ${requests}`);
    for (const a of answers) assert.ok(valid.has(a), `answer ${a} came from a valid manifest`);
    assert.ok(answers.size > 10, `many manifests served: ${answers.size}`);
    assert.ok(took < 2000);
    assert.equal(await metric(gw, 'gateway_manifest_reloads_total{result="rejected"}'), bad);
  } finally {
    await gw.stop();
  }
});

test('watcher torture: 200 changes of every kind converge and the watcher stays alive', { timeout: 60_000 }, async () => {
  const cm = configMapDir(manifestFor(0));
  // The backup poll is off: what converges here is the watcher's doing.
  const gw = await startGateway({ manifestPath: cm.path, args: ['--watch-interval', '600000'] });
  try {
    let version = 0;
    const writers = [cm.inPlace, cm.rename, cm.swap, (t: string) => cm.rename(t.slice(0, 10)), cm.swap];
    for (let i = 0; i < 200; i++) {
      writers[i % writers.length](manifestFor(++version));
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    cm.swap(manifestFor(++version));
    await eventually(async () => (await locationNow(gw)) === `https://v${version}.example/f`, 3000, 'converged');
    // Still alive: one more change of each kind is seen.
    for (const write of [cm.inPlace, cm.rename, cm.swap]) {
      write(manifestFor(++version));
      await eventually(async () => (await locationNow(gw)) === `https://v${version}.example/f`, 2000, `after ${write.name}`);
    }
  } finally {
    await gw.stop();
  }
});

test('identical content does not reload; SIGHUP forces one; a deleted file keeps serving', { timeout: 30_000 }, async () => {
  const dir = tempDir('gw-hup-');
  const path = join(dir, 'manifest.json');
  writeFileSync(path, manifestFor(1));
  const gw = await startGateway({ manifestPath: path });
  try {
    writeFileSync(path, manifestFor(1));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await metric(gw, 'gateway_manifest_reloads_total{result="success"}'), 0);
    gw.child.kill('SIGHUP');
    await eventually(async () => (await metric(gw, 'gateway_manifest_reloads_total{result="success"}')) === 1, 2000, 'SIGHUP reload');
    unlinkSync(path);
    await gw.waitForLog((l) => l.msg === 'manifest cannot be read; the current one keeps serving', 3000);
    assert.equal(await locationNow(gw), 'https://v1.example/f');
    writeFileSync(path, manifestFor(2));
    await eventually(async () => (await locationNow(gw)) === 'https://v2.example/f', 2000, 'recreated file');
    const hash = /gateway_manifest_info\{sha256="([0-9a-f]{64})"\} 1/.exec((await request(gw.adminPort, { path: '/metrics' })).text)?.[1];
    // The file's SHA-256, as `sha256sum` prints it.
    assert.equal(hash, createHash('sha256').update(readFileSync(path)).digest('hex'));
    assert.ok((await metric(gw, 'gateway_manifest_loaded_timestamp_seconds')) > 1e9);
    assert.equal(await metric(gw, 'gateway_rules_loaded{kind="file-v1"}'), 1);
  } finally {
    await gw.stop();
  }
});

test('a change the watcher saw is read once: the stat check does not read it again', { timeout: 30_000 }, async () => {
  const dir = tempDir('gw-once-');
  const path = join(dir, 'manifest.json');
  writeFileSync(path, manifestFor(1));
  const gw = await startGateway({ manifestPath: path, args: ['--log-level', 'debug', '--watch-interval', '200'] });
  try {
    writeFileSync(path, manifestFor(2));
    await eventually(async () => (await locationNow(gw)) === 'https://v2.example/f', 3000, 'reloaded');
    // Several stat checks later (fewer than the ten after which content is hashed anyway).
    await new Promise((r) => setTimeout(r, 1000));
    const checks = gw.logs.filter((l) => l.msg === 'manifest checked');
    assert.deepEqual(checks.map((l) => [l.reason, l.same]), [['watch', false]]);
  } finally {
    await gw.stop();
  }
});

test('a large manifest read while it is written in place is looked at again, not rejected', { timeout: 60_000 }, async () => {
  const dir = tempDir('gw-torn-');
  const path = join(dir, 'manifest.json');
  // 50,000 rules (≈ 10 MB): rejecting a torn copy takes long enough for the write to end meanwhile.
  const rules = (version: number) =>
    Array.from({ length: 50_000 }, (_, i) => ({ type: 'file-v1', domain: D, 'package-id': `p${i}`, 'incoming-path': `/f${i}`, 'outgoing-url': `https://v${version}.example/f${i}` }));
  writeFileSync(path, JSON.stringify({ rules: rules(1) }));
  const gw = await startGateway({ manifestPath: path, args: ['--log-level', 'debug', '--watch-debounce', '10', '--watch-interval', '600000'] });
  try {
    const text = JSON.stringify({ rules: rules(2) });
    const half = Math.floor(text.length / 2);
    // An in-place write in two pieces: the gateway reads the first half (a torn copy)...
    const seen = gw.logs.length;
    writeFileSync(path, text.slice(0, half));
    await gw.waitForLog((l) => l.msg === 'manifest checked' && gw.logs.indexOf(l) >= seen, 10_000);
    // ...and the write ends while that copy is being rejected.
    appendFileSync(path, text.slice(half));
    await gw.waitForLog((l) => l.msg === 'manifest reloaded' && gw.logs.indexOf(l) >= seen, 30_000);
    assert.equal((await request(gw.port, { path: '/f49999', host: D })).headers.location, 'https://v2.example/f49999');
    assert.ok(gw.logs.some((l) => l.msg === 'manifest changed while it was read; looking again'), 'the torn copy was read');
    assert.deepEqual(gw.logs.filter((l) => l.msg === 'manifest rejected, the last good one keeps serving'), []);
    assert.equal(await metric(gw, 'gateway_manifest_reloads_total{result="rejected"}'), 0);

    // A manifest that stays broken is still rejected.
    writeFileSync(path, text.slice(0, half));
    await gw.waitForLog((l) => l.msg === 'manifest rejected, the last good one keeps serving', 30_000);
    assert.equal(await metric(gw, 'gateway_manifest_reloads_total{result="rejected"}'), 1);
  } finally {
    await gw.stop();
  }
});

test('a writer that pauses in the middle of an in-place write gets no rejection; a manifest that stays cut off is rejected after 2 s', { timeout: 30_000 }, async () => {
  const dir = tempDir('gw-pause-');
  const path = join(dir, 'manifest.json');
  writeFileSync(path, manifestFor(1));
  const gw = await startGateway({ manifestPath: path, args: ['--log-level', 'debug', '--watch-debounce', '10', '--watch-interval', '600000'] });
  try {
    const rejections = () => gw.logs.filter((l) => l.msg === 'manifest rejected, the last good one keeps serving').length;
    const text = manifestFor(2);
    const half = Math.floor(text.length / 2);
    // `curl -o manifest.json` on a slow link: the file is truncated and half
    // written, then nothing comes for 700 ms (70 times the debounce).
    const seen = gw.logs.length;
    writeFileSync(path, text.slice(0, half));
    await gw.waitForLog((l) => l.msg === 'manifest checked' && gw.logs.indexOf(l) >= seen, 10_000);
    await new Promise((r) => setTimeout(r, 700));
    appendFileSync(path, text.slice(half));
    await gw.waitForLog((l) => l.msg === 'manifest reloaded' && gw.logs.indexOf(l) >= seen, 10_000);
    assert.equal(await locationNow(gw), 'https://v2.example/f');
    assert.equal(rejections(), 0);
    assert.equal(await metric(gw, 'gateway_manifest_reloads_total{result="rejected"}'), 0);

    // Cut off for good: rejected once it has stayed so for 2 s, not before.
    const cutAt = Date.now();
    writeFileSync(path, manifestFor(3).slice(0, half));
    await gw.waitForLog((l) => l.msg === 'manifest rejected, the last good one keeps serving', 10_000);
    const took = Date.now() - cutAt;
    assert.ok(took >= 2000, `rejected after ${took} ms`);
    assert.equal(rejections(), 1);
    assert.equal(await metric(gw, 'gateway_manifest_reloads_total{result="rejected"}'), 1);
    assert.equal(await locationNow(gw), 'https://v2.example/f');
  } finally {
    await gw.stop();
  }
});

for (const twice of [false, true]) {
  const title = twice
    ? 'graceful stop: a second SIGTERM while stopping changes nothing; the request in flight completes, exit 0'
    : 'graceful stop: a slow proxied request in flight at SIGTERM completes with 200, exit 0';
  test(title, { timeout: 30_000 }, async () => {
    const { upstream, base } = await slowUpstream();
    const gw = await startGateway({
      manifest: { rules: [{ type: 'docker-v1', domain: D, 'package-id': 'p', 'repository-name': 'org/app', registry: 'slow.registry', 'always-proxy': true }] },
      args: ['--upstream', `slow.registry=${base}`],
    });
    try {
      const pending = request(gw.port, { path: '/v2/org/app/blobs/sha256:x', host: D });
      await new Promise((r) => setTimeout(r, 400));
      const exited = gw.stop('SIGTERM');
      await gw.waitForLog((l) => l.msg === 'stopping: draining in-flight requests');
      if (twice) {
        gw.child.kill('SIGTERM');
        await gw.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('already stopping'));
      }
      // Draining: alive, and no longer ready (a load balancer stops sending requests).
      assert.equal((await request(gw.adminPort, { path: '/healthz' })).status, 200);
      assert.equal((await request(gw.adminPort, { path: '/readyz' })).status, 503);
      const res = await pending;
      assert.equal(res.status, 200);
      assert.equal(res.text, 'start-end');
      assert.equal(await exited, 0);
      assert.ok(gw.lines.some((l) => l.path === '/v2/org/app/blobs/sha256:x' && l.status === 200), 'its analytics line was written');
    } finally {
      upstream.close();
    }
  });
}

for (const workers of [1, 2]) {
  test(`--stop-delay${workers > 1 ? ', --workers 2' : ''}: after SIGTERM the gateway is not ready, and still takes and serves new connections for the delay (a load balancer that has not yet stopped sending); then it drains and exits 0`, { timeout: 30_000 }, async () => {
    // Long enough that a busy machine still sends the requests within it.
    const delay = 3000;
    const gw = await startGateway({
      manifest: { rules: [{ type: 'file-v1', domain: D, 'package-id': 'p', 'incoming-path': '/f', 'outgoing-url': 'https://v1.example/f' }] },
      args: ['--stop-delay', String(delay), ...(workers > 1 ? ['--workers', '2'] : [])],
    });
    await eventually(async () => (await request(gw.adminPort, { path: '/readyz' })).status === 200, 10_000, 'ready');
    const signalled = Date.now();
    const exited = gw.stop('SIGTERM');
    await gw.waitForLog((l) => l.msg === 'stopping: not ready, still serving for --stop-delay, then draining in-flight requests');
    assert.equal((await request(gw.adminPort, { path: '/readyz' })).status, 503);
    // New connections each (agent: false), as a load balancer opens them.
    const served = await Promise.all(Array.from({ length: 4 }, () => request(gw.port, { path: '/f', host: D })));
    assert.ok(Date.now() - signalled < delay, 'the requests were sent within the delay');
    assert.deepEqual(served.map((r) => r.status), [307, 307, 307, 307]);
    assert.equal(await exited, 0);
    assert.ok(Date.now() - signalled >= delay, `exited ${Date.now() - signalled} ms after SIGTERM, before the delay ran out`);
    for (const r of served) assert.ok(gw.lines.some((l) => l.requestId === r.headers['x-request-id']), 'every line was written');
  });
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  const who = signal === 'SIGTERM' ? 'systemd stopping its control group' : 'Ctrl-C in a terminal';
  test(`--workers 2, ${signal} to every process at once (${who}): in-flight requests finish, every line is written, exit 0`, { timeout: 30_000 }, async () => {
    const { upstream, base } = await slowUpstream();
    const gw = await startGateway({
      manifest: {
        rules: [
          { type: 'file-v1', domain: D, 'package-id': 'p', 'incoming-path': '/f', 'outgoing-url': 'https://v1.example/f' },
          { type: 'docker-v1', domain: D, 'package-id': 'p', 'repository-name': 'org/app', registry: 'slow.registry', 'always-proxy': true },
        ],
      },
      args: ['--workers', '2', '--upstream', `slow.registry=${base}`],
    });
    const closed = new Promise<number | null>((resolve) => gw.child.once('close', resolve));
    try {
      await eventually(async () => (await request(gw.adminPort, { path: '/readyz' })).status === 200, 10_000, 'workers ready');
      const workers = gw.logs.filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
      assert.equal(workers.length, 2);
      // New connections each: the cluster spreads them over both workers.
      await Promise.all(Array.from({ length: 20 }, () => locationNow(gw)));
      const pending = Array.from({ length: 4 }, () => request(gw.port, { path: '/v2/org/app/blobs/sha256:x', host: D }));
      await new Promise((r) => setTimeout(r, 400));
      for (const pid of [gw.child.pid!, ...workers]) process.kill(pid, signal);
      await gw.waitForLog((l) => l.msg === 'stopping: draining in-flight requests' && l.pid === gw.child.pid);
      assert.equal((await request(gw.adminPort, { path: '/readyz' })).status, 503);
      for (const res of await Promise.all(pending)) assert.equal(res.text, 'start-end');
      assert.equal(await closed, 0);
      assert.equal(gw.lines.filter((l) => l.path === '/f' && l.status === 307).length, 20);
      assert.equal(gw.lines.filter((l) => l.path === '/v2/org/app/blobs/sha256:x' && l.status === 200).length, 4);
      assert.equal(new Set(gw.logs.filter((l) => l.msg === 'stopped').map((l) => l.pid)).size, 3, 'each process stopped');
    } finally {
      await gw.stop();
      upstream.close();
    }
  });
}

/** A gateway with two workers, on manifest version 1 in a file of its own, once both listen. */
async function twoWorkers(): Promise<{ gw: GatewayProcess; path: string }> {
  const path = join(tempDir('gw-workers-'), 'manifest.json');
  writeFileSync(path, manifestFor(1));
  const gw = await startGateway({ manifestPath: path, args: ['--workers', '2'] });
  await eventually(async () => (await request(gw.adminPort, { path: '/readyz' })).status === 200, 10_000, 'workers ready');
  return { gw, path };
}

/** The answers of `n` new connections, which the cluster spreads over the workers. */
async function answersNow(gw: GatewayProcess, n = 10): Promise<Set<string | undefined>> {
  return new Set(await Promise.all(Array.from({ length: n }, () => locationNow(gw))));
}

/** SIGKILL to a worker; resolves with its pid once another one listens. */
async function replaceAWorker(gw: GatewayProcess): Promise<number> {
  const listening = () => gw.logs.filter((l) => l.msg === 'worker listening');
  const before = listening().length;
  const victim = listening()[0].pid as number;
  process.kill(victim, 'SIGKILL');
  await eventually(async () => listening().length === before + 1, 10_000, 'a replacement listening');
  return victim;
}

test('--workers 2: a worker that dies is replaced at once, and the gateway stays ready', { timeout: 30_000 }, async () => {
  const { gw } = await twoWorkers();
  try {
    const victim = await replaceAWorker(gw);
    const died = gw.logs.filter((l) => l.msg === 'worker died, starting another');
    assert.equal(died.length, 1);
    assert.equal(died[0].worker, victim);
    assert.equal(died[0].signal, 'SIGKILL');
    assert.equal(died[0].restartInMs, 0);
    assert.equal((await request(gw.adminPort, { path: '/readyz' })).status, 200);
    assert.deepEqual(await answersNow(gw), new Set(['https://v1.example/f']));
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});

test('--workers 2: /metrics answers at once while a worker is being replaced, for the workers that listen', { timeout: 30_000 }, async () => {
  const { gw } = await twoWorkers();
  try {
    await answersNow(gw, 4);
    process.kill(gw.logs.find((l) => l.msg === 'worker listening')!.pid as number, 'SIGKILL');
    await gw.waitForLog((l) => l.msg === 'worker died, starting another');
    const asked = Date.now();
    const res = await request(gw.adminPort, { path: '/metrics' });
    const took = Date.now() - asked;
    assert.equal(res.status, 200);
    assert.ok(took < 1500, `answered in ${took} ms`);
    assert.match(res.text, /^gateway_requests_total\{outcome="redirect",kind="file"\} [1-4]$/m);
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});

test("--workers 2: a worker that does not answer (stopped) is left out of a scrape after 2 s, which still answers 200 with the others' counts", { timeout: 30_000 }, async () => {
  const { gw } = await twoWorkers();
  const silent = gw.logs.find((l) => l.msg === 'worker listening')!.pid as number;
  try {
    await answersNow(gw, 4);
    process.kill(silent, 'SIGSTOP');
    const asked = Date.now();
    const res = await request(gw.adminPort, { path: '/metrics' });
    const took = Date.now() - asked;
    assert.equal(res.status, 200);
    assert.ok(took >= 1900 && took < 4000, `answered in ${took} ms`);
    assert.match(res.text, /^gateway_rules_loaded\{kind="file-v1"\} 1$/m);
  } finally {
    process.kill(silent, 'SIGCONT');
    assert.equal(await gw.stop(), 0);
  }
});

test("--workers 2: a replacement worker serves the primary's manifest, not the file's, which is broken meanwhile; later reloads reach it", { timeout: 30_000 }, async () => {
  const { gw, path } = await twoWorkers();
  try {
    writeFileSync(path, schemaInvalid(1));
    await gw.waitForLog((l) => l.msg === 'manifest rejected, the last good one keeps serving');
    await replaceAWorker(gw);
    assert.equal(gw.logs.filter((l) => l.msg === 'worker died, starting another').length, 1);
    assert.deepEqual(await answersNow(gw), new Set(['https://v1.example/f']));
    writeFileSync(path, manifestFor(2));
    await gw.waitForLog((l) => l.msg === 'manifest reloaded');
    await eventually(async () => {
      const answers = await answersNow(gw);
      return answers.size === 1 && answers.has('https://v2.example/f');
    }, 5000, 'both workers on v2');
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});

test('--workers 2: a reload reaches both workers, decided once', { timeout: 30_000 }, async () => {
  const dir = tempDir('gw-workers-');
  const path = join(dir, 'manifest.json');
  writeFileSync(path, manifestFor(1));
  const gw = await startGateway({ manifestPath: path, args: ['--workers', '2'] });
  try {
    await eventually(async () => (await request(gw.adminPort, { path: '/readyz' })).status === 200, 10_000, 'workers ready');
    writeFileSync(path, manifestFor(2));
    await new Promise((r) => setTimeout(r, 1000));
    // New connections are spread over the workers (round robin): all must answer v2.
    const answers = await Promise.all(Array.from({ length: 20 }, () => locationNow(gw)));
    assert.deepEqual(new Set(answers), new Set(['https://v2.example/f']));
    assert.equal(await metric(gw, 'gateway_manifest_reloads_total{result="success"}'), 1);
    const served = await metric(gw, 'gateway_requests_total{outcome="redirect",kind="file"}');
    assert.equal(served, 20, 'requests counted across workers');
    const pids = new Set(gw.logs.filter((l) => l.msg === 'worker listening').map((l) => l.pid));
    assert.equal(pids.size, 2);
  } finally {
    assert.equal(await gw.stop(), 0);
  }
  rmSync(dir, { recursive: true, force: true });
});
