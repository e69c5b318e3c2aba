// SPEC §8a end to end with the real npm CLI, the machine's and npm 12 (and pnpm, yarn 1 and yarn 4): packages packed here with
// `npm pack`, served by a small stand-in registry (packument with real
// integrity values, tarballs, ETags), and an npm-v1 rule pointing at it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { npm, npmClients, type NpmClient } from './helpers/npm-clients.ts';
import { makeCerts } from './helpers/registry.ts';
import { metricValue, request, stalledClients } from './helpers/http-client.ts';

const run = promisify(execFile);
const work = tempDir('gw-npm-');

interface Pkg { name: string; version: string; file: string; bytes: Buffer }
const pkgs: Pkg[] = [];
let registry: Server;
let base: string;
let tamper = false;
const seen: { url: string; ifNoneMatch?: string }[] = [];
let gw: GatewayProcess;

const script = (path: string) => new URL(`../node_modules/${path}`, import.meta.url).pathname;

async function pack(name: string, version: string, body: string): Promise<Pkg> {
  const dir = join(work, 'src', name.replace('/', '__'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version, main: 'index.js', license: 'MIT' }));
  writeFileSync(join(dir, 'index.js'), body);
  const out = join(work, 'tarballs');
  mkdirSync(out, { recursive: true });
  const before = new Set(readdirSync(out));
  await npm(['pack', '--pack-destination', out], dir);
  const file = readdirSync(out).find((f) => !before.has(f))!;
  return { name, version, file, bytes: readFileSync(join(out, file)) };
}

function packument(p: Pkg): string {
  const integrity = 'sha512-' + createHash('sha512').update(tamper ? Buffer.from('not the tarball') : p.bytes).digest('base64');
  const shasum = createHash('sha1').update(p.bytes).digest('hex');
  const tarballName = p.name.includes('/') ? p.name.split('/')[1] : p.name;
  return JSON.stringify({
    name: p.name,
    // Over 8 KiB, as most documents are: the gateway gzips it for npm.
    readme: 'A package for the gateway tests. '.repeat(300),
    'dist-tags': { latest: p.version },
    // As registries write it; yarn 4 holds back versions it cannot date (its npmMinimalAgeGate).
    time: { created: '2020-01-01T00:00:00.000Z', modified: '2020-01-01T00:00:00.000Z', [p.version]: '2020-01-01T00:00:00.000Z' },
    versions: { [p.version]: { name: p.name, version: p.version, main: 'index.js', dist: { tarball: `${base}/${p.name}/-/${tarballName}-${p.version}.tgz`, integrity, shasum } } },
  });
}

before(async () => {
  pkgs.push(await pack('tiny-gw-pkg', '1.0.0', "module.exports = 'tiny from the gateway';\n"));
  pkgs.push(await pack('@gwtest/scoped', '2.1.0', "module.exports = 'scoped';\n"));
  registry = createServer((req, res) => {
    const url = decodeURIComponent(req.url ?? '');
    seen.push({ url, ifNoneMatch: req.headers['if-none-match'] });
    for (const p of pkgs) {
      if (url === `/${p.name}`) {
        const body = packument(p);
        const etag = `"${createHash('sha1').update(body).digest('hex')}"`;
        if (req.headers['if-none-match'] === etag) return void res.writeHead(304, { etag }).end();
        return void res.writeHead(200, { 'content-type': 'application/json', etag }).end(body);
      }
      if (url.endsWith(`/-/${p.file.replace(/^gwtest-/, '')}`) || url.endsWith(`/-/${p.file}`)) {
        return void res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': p.bytes.length }).end(p.bytes);
      }
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Not found"}');
  });
  await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(registry.address() as AddressInfo).port}`;
  gw = await startGateway({
    manifest: {
      rules: [
        { type: 'npm-v1', domain: '127.0.0.1', 'package-id': 'pkg-tiny', 'package-name': 'tiny-gw-pkg', registry: base },
        { type: 'npm-v1', domain: '127.0.0.1', 'package-id': 'pkg-scoped', 'package-name': '@gwtest/scoped', registry: base },
      ],
    },
    args: ['--npm-cache-ttl', '0'],
  });
});
after(async () => {
  await gw.stop();
  registry.close();
});

function project(name: string, npmrc = ''): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '0.0.0', private: true }));
  if (npmrc !== '') writeFileSync(join(dir, '.npmrc'), npmrc);
  return dir;
}

/**
 * pnpm, yarn 1 and yarn 4 from devDependencies (yarn 4 as `yarn-berry`),
 * each run from its own package: both yarns claim the name `yarn` in
 * node_modules/.bin. HOME keeps the user's .npmrc and .yarnrc out of it.
 */
const otherClients = [
  { name: 'pnpm', script: script('pnpm/bin/pnpm.cjs'), agent: /^pnpm\//, args: (registry: string) => ['add', '--registry', registry, '--store-dir', join(work, 'pnpm-store'), 'tiny-gw-pkg', '@gwtest/scoped'] },
  { name: 'yarn 1', script: script('yarn/bin/yarn.js'), agent: /^yarn\/1\./, args: (registry: string) => ['add', '--registry', registry, '--cache-folder', join(work, 'yarn-cache'), '--no-lockfile', 'tiny-gw-pkg', '@gwtest/scoped'] },
  {
    name: 'yarn 4',
    script: script('yarn-berry/bin/yarn.js'),
    // yarn 4 names its HTTP library, not itself.
    agent: /^got /,
    args: (registry: string, dir: string) => {
      // Its registry and an http one allowed, packages in node_modules, nothing global; an empty lock file marks the project.
      writeFileSync(join(dir, '.yarnrc.yml'), `npmRegistryServer: "${registry}"\nunsafeHttpWhitelist: ["127.0.0.1"]\nnodeLinker: node-modules\nenableGlobalCache: false\nenableTelemetry: false\n`);
      writeFileSync(join(dir, 'yarn.lock'), '');
      return ['add', 'tiny-gw-pkg', '@gwtest/scoped'];
    },
  },
];
for (const client of otherClients) {
  test(`${client.name} installs through the gateway: documents and tarballs, plain and scoped`, { timeout: 120_000 }, async () => {
    const dir = project(`with-${client.name.replace(' ', '')}`);
    const before = gw.lines.length;
    const args = client.args(`http://127.0.0.1:${gw.port}`, dir);
    await run(process.execPath, [client.script, ...args], { cwd: dir, timeout: 100_000, env: { ...process.env, HOME: dir, YARN_IGNORE_PATH: '1' } });
    assert.equal(readFileSync(join(dir, 'node_modules', 'tiny-gw-pkg', 'index.js'), 'utf8'), "module.exports = 'tiny from the gateway';\n");
    assert.equal(readFileSync(join(dir, 'node_modules', '@gwtest', 'scoped', 'index.js'), 'utf8'), "module.exports = 'scoped';\n");
    await new Promise((r) => setTimeout(r, 200));
    const mine = gw.lines.slice(before).filter((l) => client.agent.test(l.client.userAgent ?? ''));
    // The tarballs, the scoped one's path with its slash encoded or not (yarn 4 writes %2f).
    for (const [path, version] of [[/^\/tiny-gw-pkg\/-\/tiny-gw-pkg-1\.0\.0\.tgz$/, '1.0.0'], [/^\/@gwtest(\/|%2f)scoped\/-\/scoped-2\.1\.0\.tgz$/i, '2.1.0']] as const) {
      const tarball = mine.find((l) => path.test(l.path));
      assert.equal(tarball?.status, 307, `${path}: ${mine.map((l) => `${l.path} ${l.status}`).join(', ')}`);
      assert.equal(tarball?.capture?.version, version);
    }
    // The scoped document, with its slash encoded (pnpm writes %2F, the yarns %2f).
    assert.ok(mine.some((l) => /^\/@gwtest%2fscoped$/i.test(l.path) && l.status === 200), mine.map((l) => `${l.path} ${l.status}`).join(', '));
  });
}

const installArgs = (cache: string, ...more: string[]) => ['install', '--cache', cache, '--no-audit', '--no-update-notifier', '--fetch-retries=0', ...more];

/** The lines since `before` of requests made by `client` (a line of an earlier test can come in late). */
const linesOf = (client: NpmClient, before: number) => gw.lines.slice(before).filter((l) => l.client.userAgent?.startsWith(`npm/${client.version} `));

/** What a user of each npm does: install, revalidate, ci, read, a scope mapping, an integrity failure. */
for (const [i, client] of npmClients.entries()) {
  // Folders of its own even when the machine's npm is npm 12 too.
  const key = `${i}-${client.name.replace(/\W+/g, '-')}`;

  test(`${client.name} install through the gateway: installed files match, tarball redirected and counted`, { timeout: 120_000 }, async () => {
    const before = gw.lines.length;
    const dir = project(`p1-${key}`);
    await npm([...installArgs(join(work, `cache1-${key}`), '--registry', `http://127.0.0.1:${gw.port}/`), 'tiny-gw-pkg'], dir, client);
    assert.equal(readFileSync(join(dir, 'node_modules', 'tiny-gw-pkg', 'index.js'), 'utf8'), "module.exports = 'tiny from the gateway';\n");
    // What npm asks for: the document is gzipped for it.
    const asNpm = await request(gw.port, {
      path: '/tiny-gw-pkg',
      host: `127.0.0.1:${gw.port}`,
      headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*', 'accept-encoding': 'gzip,deflate' },
    });
    assert.equal(asNpm.headers['content-encoding'], 'gzip');
    assert.equal(asNpm.headers.vary, 'Accept, Accept-Encoding');
    assert.equal(JSON.parse(gunzipSync(asNpm.body).toString('utf8')).versions['1.0.0'].dist.tarball, `http://127.0.0.1:${gw.port}/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz`);
    await new Promise((r) => setTimeout(r, 200));
    const mine = linesOf(client, before);
    const doc = mine.find((l) => l.path === '/tiny-gw-pkg');
    assert.deepEqual(doc?.capture, { type: 'npm', package: 'pkg-tiny', name: 'tiny-gw-pkg', version: null, url: `${base}/tiny-gw-pkg` });
    const tarball = mine.find((l) => l.path === '/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz');
    assert.equal(tarball?.status, 307);
    assert.deepEqual(tarball?.capture, { type: 'npm', package: 'pkg-tiny', name: 'tiny-gw-pkg', version: '1.0.0', url: `${base}/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz` });
  });

  test(`${client.name} install from the gateway serving HTTPS itself: the document names its tarballs with https, and npm fetches them so`, { timeout: 120_000 }, async () => {
    const ca = makeCerts(join(work, `certs-${key}`));
    const tls = await startGateway({ manifestPath: gw.manifestPath, args: ['--npm-cache-ttl', '0', '--tls-cert', ca.cert, '--tls-key', ca.key] });
    try {
      const origin = `https://127.0.0.1:${tls.port}`;
      const dir = project(`p-https-${key}`);
      await npm([...installArgs(join(work, `cache-https-${key}`), '--registry', `${origin}/`, '--cafile', ca.caCert), 'tiny-gw-pkg'], dir, client);
      assert.equal(readFileSync(join(dir, 'node_modules', 'tiny-gw-pkg', 'index.js'), 'utf8'), "module.exports = 'tiny from the gateway';\n");
      const { stdout } = await npm(['view', '--registry', `${origin}/`, '--cafile', ca.caCert, 'tiny-gw-pkg', 'dist.tarball'], dir, client);
      assert.equal(stdout.trim(), `${origin}/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz`);
      await new Promise((r) => setTimeout(r, 200));
      const tarball = tls.lines.find((l) => l.path === '/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz');
      assert.equal(tarball?.status, 307);
      assert.match(String(tarball?.client.userAgent), /^npm\//);
    } finally {
      await tls.stop();
    }
  });

  test(`${client.name}: a second install with --prefer-online revalidates (304)`, { timeout: 120_000 }, async () => {
    const seenBefore = seen.length;
    const dir = project(`p2-${key}`);
    const cache = join(work, `cache2-${key}`);
    await npm([...installArgs(cache, '--registry', `http://127.0.0.1:${gw.port}/`), 'tiny-gw-pkg'], dir, client);
    const before = gw.lines.length;
    await npm([...installArgs(cache, '--prefer-online', '--registry', `http://127.0.0.1:${gw.port}/`), 'tiny-gw-pkg'], project(`p2b-${key}`), client);
    await new Promise((r) => setTimeout(r, 200));
    const docs = gw.lines.slice(before).filter((l) => l.path === '/tiny-gw-pkg');
    assert.ok(docs.some((l) => l.status === 304 && l.outcome === 'not-modified'), JSON.stringify(docs.map((l) => l.status)));
    assert.ok(seen.slice(seenBefore).some((s) => s.url === '/tiny-gw-pkg' && s.ifNoneMatch !== undefined), 'the gateway revalidated with the backend');
  });

  test(`${client.name} ci from the lock file of an install installs through the gateway, and its tarball download is counted once`, { timeout: 120_000 }, async () => {
    const dir = project(`ci-${key}`);
    const registry = `http://127.0.0.1:${gw.port}/`;
    await npm([...installArgs(join(work, `cache-ci-1-${key}`), '--registry', registry), 'tiny-gw-pkg'], dir, client);
    assert.equal(JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8')).packages['node_modules/tiny-gw-pkg'].version, '1.0.0');
    rmSync(join(dir, 'node_modules'), { recursive: true });
    // The install's lines are in.
    await new Promise((r) => setTimeout(r, 300));
    const before = gw.lines.length;
    // A fresh cache, as a CI machine has.
    await npm(['ci', '--cache', join(work, `cache-ci-2-${key}`), '--no-audit', '--no-update-notifier', '--fetch-retries=0', '--registry', registry], dir, client);
    assert.equal(readFileSync(join(dir, 'node_modules', 'tiny-gw-pkg', 'index.js'), 'utf8'), "module.exports = 'tiny from the gateway';\n");
    await new Promise((r) => setTimeout(r, 300));
    const tarballs = gw.lines.slice(before).filter((l) => l.path.endsWith('.tgz'));
    assert.deepEqual(tarballs.map((l) => [l.path, l.status, l.capture?.version]), [['/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz', 307, '1.0.0']]);
  });

  test(`${client.name}: view, dist-tag ls and ping through the gateway`, { timeout: 120_000 }, async () => {
    const dir = project(`reads-${key}`);
    const read = async (...args: string[]) => (await npm([...args, '--registry', `http://127.0.0.1:${gw.port}/`, '--cache', join(work, `cache-reads-${key}`)], dir, client)).stdout.trim();
    assert.equal(await read('view', '@gwtest/scoped@2.1.0', 'dist.tarball'), `http://127.0.0.1:${gw.port}/@gwtest/scoped/-/scoped-2.1.0.tgz`);
    assert.equal(await read('dist-tag', 'ls', 'tiny-gw-pkg'), 'latest: 1.0.0');
    assert.equal(await read('dist-tag', 'ls', '@gwtest/scoped'), 'latest: 2.1.0');
    const tags = await request(gw.port, { path: '/-/package/tiny-gw-pkg/dist-tags', host: `127.0.0.1:${gw.port}` });
    assert.deepEqual(JSON.parse(tags.text), { latest: '1.0.0' });
    const [line] = await gw.linesFor(tags.headers['x-request-id'] as string);
    assert.deepEqual(line.capture, { type: 'npm', package: 'pkg-tiny', name: 'tiny-gw-pkg', version: null, url: `${base}/tiny-gw-pkg` });
    assert.equal((await request(gw.port, { path: '/-/package/left-pad/dist-tags', host: `127.0.0.1:${gw.port}` })).status, 404);
    assert.equal((await request(gw.port, { method: 'PUT', path: '/-/package/tiny-gw-pkg/dist-tags/next', host: `127.0.0.1:${gw.port}`, body: '"1.0.0"' })).status, 405);
    // npm ping (npm doctor asks too): the registry answers.
    assert.match((await npm(['ping', '--registry', `http://127.0.0.1:${gw.port}/`, '--cache', join(work, `cache-reads-${key}`)], dir, client)).stderr, /PONG/);
  });

  test(`${client.name}: a scoped package through an .npmrc scope mapping`, { timeout: 120_000 }, async () => {
    const before = gw.lines.length;
    // The default registry is unreachable: only the scope mapping can work.
    const dir = project(`p3-${key}`, `registry=http://127.0.0.1:1/\n@gwtest:registry=http://127.0.0.1:${gw.port}/\n`);
    await npm([...installArgs(join(work, `cache3-${key}`)), '@gwtest/scoped'], dir, client);
    assert.equal(readFileSync(join(dir, 'node_modules', '@gwtest', 'scoped', 'index.js'), 'utf8'), "module.exports = 'scoped';\n");
    await new Promise((r) => setTimeout(r, 200));
    const tarball = linesOf(client, before).find((l) => l.path === '/@gwtest/scoped/-/scoped-2.1.0.tgz');
    assert.equal(tarball?.capture?.version, '2.1.0');
  });

  test(`${client.name}: a tampered integrity makes npm fail with EINTEGRITY`, { timeout: 120_000 }, async () => {
    tamper = true;
    try {
      const dir = project(`p4-${key}`);
      await assert.rejects(
        npm([...installArgs(join(work, `cache4-${key}`), '--registry', `http://127.0.0.1:${gw.port}/`), 'tiny-gw-pkg'], dir, client),
        (e: { stderr: string }) => /EINTEGRITY/.test(e.stderr),
      );
    } finally {
      tamper = false;
    }
  });
}

test('packument details: rewritten tarballs, integrity untouched, version documents, ETag, read only, unknown packages', { timeout: 30_000 }, async () => {
  const res = await request(gw.port, { path: '/tiny-gw-pkg', host: `127.0.0.1:${gw.port}` });
  const doc = JSON.parse(res.text);
  const dist = doc.versions['1.0.0'].dist;
  assert.equal(dist.tarball, `http://127.0.0.1:${gw.port}/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz`);
  assert.match(dist.integrity, /^sha512-/);
  assert.equal(JSON.parse(packument(pkgs[0])).versions['1.0.0'].dist.integrity, dist.integrity);
  const again = await request(gw.port, { path: '/tiny-gw-pkg', host: `127.0.0.1:${gw.port}`, headers: { 'if-none-match': res.headers.etag as string } });
  assert.equal(again.status, 304);
  const latest = JSON.parse((await request(gw.port, { path: '/tiny-gw-pkg/latest', host: `127.0.0.1:${gw.port}` })).text);
  assert.equal(latest.version, '1.0.0');
  assert.equal(latest.dist.tarball, dist.tarball);
  assert.equal((await request(gw.port, { path: '/tiny-gw-pkg/9.9.9', host: `127.0.0.1:${gw.port}` })).status, 404);
  // Names an object has without owning them are no versions or tags.
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
    const res = await request(gw.port, { path: `/tiny-gw-pkg/${name}`, host: `127.0.0.1:${gw.port}` });
    assert.equal(res.status, 404, name);
    assert.deepEqual(JSON.parse(res.text), { error: 'Not found' }, name);
  }
  // The scoped name as clients write it: its slash encoded, and all of it (encodeURIComponent).
  for (const path of ['/@gwtest%2fscoped', '/%40gwtest%2Fscoped']) {
    const encoded = JSON.parse((await request(gw.port, { path, host: `127.0.0.1:${gw.port}` })).text);
    assert.equal(encoded.name, '@gwtest/scoped', path);
  }
  const head = await request(gw.port, { method: 'HEAD', path: '/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz', host: `127.0.0.1:${gw.port}` });
  assert.equal(head.status, 307);
  assert.equal((await request(gw.port, { path: '/tiny-gw-pkg/-/tiny-gw-pkg-6.6.6.tgz', host: `127.0.0.1:${gw.port}` })).status, 404);
  const unknown = await request(gw.port, { path: '/left-pad', host: `127.0.0.1:${gw.port}` });
  assert.equal(unknown.status, 404);
  assert.deepEqual(JSON.parse(unknown.text), { error: 'Not found' });
  for (const [method, path] of [['PUT', '/tiny-gw-pkg'], ['PUT', '/-/user/org.couchdb.user:me'], ['POST', '/-/npm/v1/security/audits/quick'], ['DELETE', '/tiny-gw-pkg/-rev/1']]) {
    const r = await request(gw.port, { method, path, host: `127.0.0.1:${gw.port}`, body: '{}' });
    assert.equal(r.status, 405, `${method} ${path}`);
    assert.equal(r.headers.allow, 'GET, HEAD', `${method} ${path}`);
  }
});

test('a tarball redirect answered once its document is fetched is framed as any redirect: content-length 0, not an empty chunked body', async () => {
  const g = await startGateway({ manifest: { rules: [{ type: 'npm-v1', domain: '127.0.0.1', 'package-id': 'pkg-tiny', 'package-name': 'tiny-gw-pkg', registry: base }] } });
  const host = `127.0.0.1:${g.port}`;
  try {
    // The first fetches the document; the second comes from the cache.
    for (const which of ['fetched', 'cached']) {
      const res = await request(g.port, { path: '/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz', host });
      assert.equal(res.status, 307, which);
      assert.equal(res.headers['content-length'], '0', which);
      assert.equal(res.headers['transfer-encoding'], undefined, which);
    }
  } finally {
    await g.stop();
  }
});

test('within --npm-cache-ttl, tarball redirects come from the cached document (at once, as a file redirect), the backend not asked again', async () => {
  const g = await startGateway({ manifest: { rules: [{ type: 'npm-v1', domain: '127.0.0.1', 'package-id': 'pkg-tiny', 'package-name': 'tiny-gw-pkg', registry: base }] } });
  const host = `127.0.0.1:${g.port}`;
  try {
    assert.equal((await request(g.port, { path: '/tiny-gw-pkg', host })).status, 200);
    const before = seen.length;
    const url = `${base}/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz`;
    for (const method of ['GET', 'HEAD']) {
      const res = await request(g.port, { method, path: '/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz', host });
      assert.equal(res.status, 307, method);
      assert.equal(res.headers.location, url);
      const [line] = await g.linesFor(res.headers['x-request-id'] as string);
      assert.deepEqual(line.capture, { type: 'npm', package: 'pkg-tiny', name: 'tiny-gw-pkg', version: '1.0.0', url });
    }
    const missing = await request(g.port, { path: '/tiny-gw-pkg/-/tiny-gw-pkg-6.6.6.tgz', host });
    assert.equal(missing.status, 404);
    assert.deepEqual(JSON.parse(missing.text), { error: 'Not found' });
    const [line] = await g.linesFor(missing.headers['x-request-id'] as string);
    assert.deepEqual(line.capture, { type: 'npm', package: 'pkg-tiny', name: 'tiny-gw-pkg', version: '6.6.6', url: null });
    assert.equal(seen.length, before, 'the backend was asked again');
  } finally {
    await g.stop();
  }
});

test('a client that leaves while the document is fetched is logged 499, for the document and for a tarball', async () => {
  // A backend that takes a second to answer.
  const doc = JSON.stringify({ name: 'slow', versions: { '1.0.0': { dist: { tarball: 'https://files.example/slow-1.0.0.tgz' } } } });
  const backend = createServer((_req, res) => void setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end(doc), 1000));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const g = await startGateway({
    manifest: { rules: [{ type: 'npm-v1', domain: 'npm.test', 'package-id': 's', 'package-name': 'slow', registry: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` }] },
    args: ['--npm-cache-ttl', '0'],
  });
  try {
    for (const [path, outcome] of [['/slow', 'respond'], ['/slow/-/slow-1.0.0.tgz', 'redirect']]) {
      const socket = connect(g.port, '127.0.0.1');
      socket.write(`GET ${path} HTTP/1.1\r\nhost: npm.test\r\n\r\n`);
      let answered = false;
      socket.on('data', () => (answered = true));
      await new Promise((r) => setTimeout(r, 300));
      socket.destroy();
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(answered, false);
      const line = g.lines.find((l) => l.path === path);
      assert.equal(line?.status, 499, path);
      assert.equal(line?.outcome, outcome, path);
    }
  } finally {
    await g.stop();
    backend.close();
  }
});

test('a tarball whose URL holds characters a Location field cannot (non-ASCII, a space) is redirected to, percent-encoded as UTF-8', async () => {
  const versions = {
    // In the file name: the document names it so, and clients ask for it encoded.
    '1.0.0': { name: 'snow', version: '1.0.0', dist: { tarball: 'https://files.example/snow/-/snow ☃-1.0.0.tgz' } },
    // Elsewhere: only the redirect holds it (node refused the answer: 500).
    '2.0.0': { name: 'snow', version: '2.0.0', dist: { tarball: 'https://files.example/☃/snow-2.0.0.tgz' } },
  };
  const doc = JSON.stringify({ name: 'snow', 'dist-tags': { latest: '2.0.0' }, versions });
  const backend = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(doc));
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const g = await startGateway({ manifest: { rules: [{ type: 'npm-v1', domain: 'n.test', 'package-id': 'snow', 'package-name': 'snow', registry: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` }] } });
  try {
    const written = JSON.parse((await request(g.port, { path: '/snow', host: 'n.test' })).text).versions['1.0.0'].dist.tarball;
    assert.equal(written, 'http://n.test/snow/-/snow%20%E2%98%83-1.0.0.tgz');
    const res = await request(g.port, { path: new URL(written).pathname, host: 'n.test' });
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, 'https://files.example/snow/-/snow%20%E2%98%83-1.0.0.tgz');
    await g.linesFor(res.headers['x-request-id'] as string);
    const other = await request(g.port, { path: '/snow/-/snow-2.0.0.tgz', host: 'n.test' });
    assert.equal(other.status, 307);
    assert.equal(other.headers.location, 'https://files.example/%E2%98%83/snow-2.0.0.tgz');
    await g.linesFor(other.headers['x-request-id'] as string);
  } finally {
    await g.stop();
    backend.close();
  }
});

test('a kept-alive connection the backend closes as it is reused is tried again on a new one, not logged as a failure', async () => {
  const doc = JSON.stringify({ name: 'idle', 'dist-tags': { latest: '1.0.0' }, versions: { '1.0.0': { name: 'idle', version: '1.0.0', dist: { tarball: 'https://files.example/idle-1.0.0.tgz' } } } });
  let connections = 0;
  // The second request on the first connection meets its close, as one sent just when a backend's idle timeout runs out.
  const backend = createNetServer((socket) => {
    const connection = ++connections;
    let requests = 0;
    socket.on('data', () => {
      if (connection === 1 && ++requests === 2) return void socket.destroy();
      socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(doc)}\r\n\r\n${doc}`);
    });
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const g = await startGateway({
    manifest: { rules: [{ type: 'npm-v1', domain: 'npm.test', 'package-id': 'i', 'package-name': 'idle', registry: base }] },
    args: ['--npm-cache-ttl', '0'],
  });
  try {
    for (let i = 0; i < 2; i++) assert.equal((await request(g.port, { path: '/idle', host: 'npm.test' })).status, 200);
    assert.equal(connections, 2, 'the second fetch went out again on a new connection');
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(g.logs.filter((l) => l.msg === 'upstream failed'), []);
  } finally {
    await g.stop();
    backend.close();
  }
});

test('a backend failure serves the cached copy; without one, 502 with an npm-style error', async () => {
  const doc = JSON.stringify({ name: 'flaky', 'dist-tags': { latest: '1.0.0' }, versions: { '1.0.0': { name: 'flaky', version: '1.0.0', dist: { tarball: 'https://files.example/flaky-1.0.0.tgz' } } } });
  const backend = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(doc));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const flakyBase = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const g = await startGateway({
    manifest: {
      rules: [
        { type: 'npm-v1', domain: 'npm.test', 'package-id': 'f', 'package-name': 'flaky', registry: flakyBase },
        { type: 'npm-v1', domain: 'npm.test', 'package-id': 'd', 'package-name': 'dead', registry: 'http://127.0.0.1:1' },
      ],
    },
    args: ['--npm-cache-ttl', '0'],
  });
  try {
    const first = await request(g.port, { path: '/flaky', host: 'npm.test' });
    assert.equal(first.status, 200);
    backend.closeAllConnections();
    await new Promise((r) => backend.close(r));
    const stale = await request(g.port, { path: '/flaky', host: 'npm.test' });
    assert.equal(stale.status, 200);
    assert.equal(stale.text, first.text);
    const dead = await request(g.port, { path: '/dead', host: 'npm.test' });
    assert.equal(dead.status, 502);
    assert.match(JSON.parse(dead.text).error, /did not answer/);
    // The operations log says which backend failed, and why: fetch's own message and its cause.
    const logged = await g.waitForLog((l) => l.msg === 'upstream failed' && l.backend === flakyBase);
    assert.match(String(logged.reason), /^fetch failed: .*ECONNREFUSED/);
    assert.ok(g.logs.some((l) => l.msg === 'upstream failed' && l.backend === 'http://127.0.0.1:1' && /bad port/.test(String(l.reason))));
  } finally {
    await g.stop();
  }
});

/** A gateway (with `args`) in front of a backend that serves `big`, about 20 MB, as packages with thousands of versions have. */
async function withBigDocument(args: string[], body: (g: GatewayProcess) => Promise<void>): Promise<void> {
  const versions: Record<string, object> = {};
  for (let i = 0; i < 4000; i++) versions[`1.0.${i}`] = { name: 'big', version: `1.0.${i}`, readme: 'x'.repeat(5000), dist: { tarball: `https://files.example/big-1.0.${i}.tgz` } };
  const doc = JSON.stringify({ name: 'big', 'dist-tags': { latest: '1.0.0' }, versions });
  const backend = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(doc));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const g = await startGateway({
    manifest: { rules: [{ type: 'npm-v1', domain: 'npm.test', 'package-id': 'b', 'package-name': 'big', registry: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` }] },
    args,
  });
  try {
    await body(g);
  } finally {
    await g.stop();
    backend.close();
  }
}

test('a large package document: clients that stop reading hold no copy of it and are cut off after --send-timeout; one that reads gets it whole', { timeout: 60_000 }, async () => {
  await withBigDocument(['--send-timeout', '1000'], async (g) => {
    const rss = () => Number(/^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${g.child.pid}/status`, 'utf8'))![1]) * 1024;
    const whole = await request(g.port, { path: '/big', host: 'npm.test' });
    assert.equal(whole.status, 200);
    assert.equal(Object.keys(JSON.parse(whole.text).versions).length, 4000);
    const before = rss();
    const CLIENTS = 20;
    const stalled = stalledClients(g.port, 'GET /big HTTP/1.1\r\nhost: npm.test\r\n\r\n', CLIENTS);
    await new Promise((r) => setTimeout(r, 1500));
    // A copy each would be 400 MB.
    const grown = rss() - before;
    assert.ok(grown < 100 * 1024 * 1024, `${CLIENTS} stalled clients grew the gateway by ${Math.round(grown / 1048576)} MB`);
    // Well past the send timeout (the kernel's buffers grow for a second or two, and the writes go on meanwhile),
    // the clients read again: what the kernel held, then the end. Never the whole answer.
    await new Promise((r) => setTimeout(r, 5500));
    for (const got of await stalled.resume()) assert.ok(got < whole.text.length, `${got} bytes of ${whole.text.length}`);
    assert.equal(await metricValue(g.adminPort, 'gateway_send_timeouts_total'), CLIENTS);
  });
});

test('a large package document is fetched, parsed and rendered off the main thread: the event loop never waits for it', { timeout: 60_000 }, async () => {
  // Parsed and rendered on the main thread, it held the event loop for 0.2 s at a time.
  await withBigDocument([], async (g) => {
    // The longest event-loop delay since the last scrape (prom-client resets it at each).
    const lag = () => metricValue(g.adminPort, 'gateway_nodejs_eventloop_lag_max_seconds');
    await lag();
    // Three origins: three renderings of the document, gzipped.
    for (const host of ['npm.test', 'npm.test:8080', 'npm.test:8443']) {
      const res = await request(g.port, { path: '/big', host, headers: { 'accept-encoding': 'gzip' } });
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(gunzipSync(res.body).toString('utf8')).versions['1.0.7'].dist.tarball, `http://${host}/big/-/big-1.0.7.tgz`);
    }
    const version = JSON.parse((await request(g.port, { path: '/big/1.0.3999', host: 'npm.test' })).text);
    assert.equal(version.dist.tarball, 'http://npm.test/big/-/big-1.0.3999.tgz');
    const longest = await lag();
    assert.ok(longest < 0.1, `the event loop waited ${Math.round(longest * 1000)} ms`);
    // The cache holds the text and four renderings of about 20 MB (three documents, with their gzip variants, and a version).
    const held = await metricValue(g.adminPort, 'gateway_npm_cache_bytes');
    assert.ok(held > 70e6 && held < 90e6, `${held} bytes`);
  });
});
