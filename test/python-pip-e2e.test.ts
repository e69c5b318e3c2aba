// SPEC §6 end to end with the real pip (and poetry and pdm): a wheel and an sdist built here,
// served by a local file server standing in for the backend, and python-v1
// rules with their real sha256 hashes. The machine's own pip configuration
// is neutralised.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';
import { makeCerts } from './helpers/registry.ts';
import { buildDistributions, pip, SDIST, WHEEL } from './helpers/python-dists.ts';

const run = promisify(execFile);
const work = tempDir('gw-pip-');
let files: Server;
let filesBase: string;
const fetched: string[] = [];

const sha256 = (file: string) => createHash('sha256').update(readFileSync(join(work, file))).digest('hex');

function manifest(wheelHash: string) {
  const rule = (file: string, version: string, hash: string) => ({
    type: 'python-v1', domain: '127.0.0.1', 'package-id': 'tiny', 'package-name': 'TinyPkg', version, 'file-name': file,
    'backend-url': `${filesBase}/files/${file}`, 'hash-value': { type: 'sha256', hash }, 'requires-python': '>=3.7',
  });
  return { rules: [rule(WHEEL, '0.1.0', wheelHash), rule(SDIST, '0.2.0', sha256(SDIST))] };
}

/** Debian 12's own pip (23.0, package python3-pip, which .ci/run installs), whatever python3 is first on PATH. */
const DEBIAN_PYTHON = '/usr/bin/python3';

before(async () => {
  buildDistributions(work);
  files = createServer((req, res) => {
    fetched.push(req.url ?? '');
    // Also under a folder whose name a URL cannot hold as it is (a space, non-ASCII), as requested: percent-encoded.
    const name = (req.url ?? '').replace(/^\/files\//, '').replace(/^dir%20%E2%98%83\//, '');
    const path = join(work, name);
    if (!/^[\w.-]+$/.test(name) || !existsSync(path)) return void res.writeHead(404).end();
    const body = readFileSync(path);
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  filesBase = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
});
after(() => new Promise((r) => files.close(r)));

async function withGateway<T>(m: unknown, body: (gw: GatewayProcess) => Promise<T>): Promise<T> {
  const gw = await startGateway({ manifest: m });
  try {
    return await body(gw);
  } finally {
    await gw.stop();
  }
}

test('pip install (JSON API, its default) checks the hash and installs; every download is counted', async () => {
  await withGateway(manifest(sha256(WHEEL)), async (gw) => {
    const target = join(work, 'target');
    await pip(['install', '--no-deps', '--target', target, '--index-url', `http://127.0.0.1:${gw.port}/simple/`, 'tinypkg==0.1.0'], join(work, 'cache-install'));
    assert.equal(readFileSync(join(target, 'tinypkg', '__init__.py'), 'utf8'), "VALUE = 'from the gateway test'\n");
    await new Promise((r) => setTimeout(r, 200));
    const page = gw.lines.find((l) => l.path === '/simple/tinypkg/');
    assert.ok(page, 'pip asked for the project page');
    const download = gw.lines.find((l) => l.path === `/simple/tinypkg/${WHEEL}`);
    assert.equal(download?.status, 307);
    assert.deepEqual(download?.capture, { type: 'python', package: 'tiny', version: '0.1.0', file: WHEEL, url: `${filesBase}/files/${WHEEL}` });
    assert.ok(fetched.includes(`/files/${WHEEL}`), 'the backend served the file');
  });
});

test('pip follows the redirect to a backend-url whose path a URL cannot hold as it is (a space, non-ASCII), sent percent-encoded', async () => {
  const m = manifest(sha256(WHEEL));
  m.rules[0]['backend-url'] = `${filesBase}/files/dir ☃/${WHEEL}`;
  await withGateway(m, async (gw) => {
    const target = join(work, 'target-encoded');
    await pip(['install', '--no-deps', '--target', target, '--index-url', `http://127.0.0.1:${gw.port}/simple/`, 'tinypkg==0.1.0'], join(work, 'cache-encoded'));
    assert.equal(readFileSync(join(target, 'tinypkg', '__init__.py'), 'utf8'), "VALUE = 'from the gateway test'\n");
    assert.ok(fetched.includes(`/files/dir%20%E2%98%83/${WHEEL}`), 'the backend served the file at its encoded path');
  });
});

test('pip installs through a project page over 8 KiB, which it gets gzipped', async () => {
  // 200 older releases make the page large; pip picks the one asked for.
  const m = manifest(sha256(WHEEL));
  for (let i = 0; i < 200; i++) {
    const file = `tinypkg-0.0.${i}.tar.gz`;
    m.rules.push({ ...m.rules[1], version: `0.0.${i}`, 'file-name': file, 'backend-url': `${filesBase}/files/${file}`, 'hash-value': { type: 'sha256', hash: 'ab'.repeat(32) } });
  }
  await withGateway(m, async (gw) => {
    // What pip 23 sends: the page is gzipped for it.
    const asPip = await request(gw.port, {
      path: '/simple/tinypkg/',
      host: `127.0.0.1:${gw.port}`,
      headers: { accept: 'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01', 'accept-encoding': 'gzip, deflate' },
    });
    assert.equal(asPip.headers['content-encoding'], 'gzip');
    const target = join(work, 'target-gzip');
    await pip(['install', '--no-deps', '--target', target, '--index-url', `http://127.0.0.1:${gw.port}/simple/`, 'tinypkg==0.1.0'], join(work, 'cache-gzip'));
    assert.equal(readFileSync(join(target, 'tinypkg', '__init__.py'), 'utf8'), "VALUE = 'from the gateway test'\n");
  });
});

/** Project tools, each given the gateway as its only index: its project file, its install, its lock file and how that names the wheel's hash. */
const projectTools = [
  {
    name: 'poetry',
    pyproject: (index: string) => [
      '[tool.poetry]', 'name = "consumer"', 'version = "0.0.0"', 'description = ""', 'authors = ["A <a@example.com>"]', '',
      '[tool.poetry.dependencies]', 'python = "^3.7"', 'tinypkg = "0.1.0"', '',
      // default = true: PyPI is not asked (and not reachable).
      '[[tool.poetry.source]]', 'name = "gateway"', `url = "${index}"`, 'default = true', '',
    ],
    env: (dir: string) => ({ POETRY_CACHE_DIR: join(dir, 'cache'), POETRY_VIRTUALENVS_IN_PROJECT: 'true', POETRY_NO_INTERACTION: '1' }),
    install: ['poetry', 'install', '--no-root'],
    lock: 'poetry.lock',
    hashed: (hash: string) => new RegExp(`file = "${WHEEL}", hash = "sha256:${hash}"`),
  },
  {
    name: 'pdm',
    pyproject: (index: string) => [
      '[project]', 'name = "consumer"', 'version = "0.0.0"', 'requires-python = ">=3.7"', 'dependencies = ["tinypkg==0.1.0"]', '',
      // Named pypi: it replaces PyPI (not reachable) instead of adding to it.
      '[[tool.pdm.source]]', 'name = "pypi"', `url = "${index}"`, 'verify_ssl = false', '',
    ],
    env: (dir: string) => ({ PDM_CACHE_DIR: join(dir, 'cache'), PDM_CHECK_UPDATE: 'false' }),
    install: ['pdm', 'install', '--no-self'],
    lock: 'pdm.lock',
    hashed: (hash: string) => new RegExp(`${WHEEL.replaceAll('.', '\\.')}.*sha256:${hash}`),
  },
];

for (const tool of projectTools) {
  test(`${tool.name} installs from the gateway as its only source: the lock file holds the sha256 of the wheel from the page, downloads are counted`, { timeout: 180_000 }, async () => {
    await withGateway(manifest(sha256(WHEEL)), async (gw) => {
      const dir = join(work, `${tool.name}-project`);
      mkdirSync(dir);
      writeFileSync(join(dir, 'pyproject.toml'), tool.pyproject(`http://127.0.0.1:${gw.port}/simple/`).join('\n'));
      const [command, ...args] = tool.install;
      await run(command, args, { cwd: dir, env: { ...process.env, HOME: dir, ...tool.env(dir) }, timeout: 150_000 });
      const lib = join(dir, '.venv', 'lib');
      const [python] = readdirSync(lib);
      assert.equal(readFileSync(join(lib, python, 'site-packages', 'tinypkg', '__init__.py'), 'utf8'), "VALUE = 'from the gateway test'\n");
      assert.match(readFileSync(join(dir, tool.lock), 'utf8'), tool.hashed(sha256(WHEEL)));
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(gw.lines.some((l) => l.path === '/simple/tinypkg/' && l.status === 200), JSON.stringify(gw.lines.map((l) => [l.path, l.status])));
      const downloads = gw.lines.filter((l) => l.path === `/simple/tinypkg/${WHEEL}`);
      assert.ok(downloads.length > 0 && downloads.every((l) => l.status === 307 && l.capture?.type === 'python'), JSON.stringify(downloads));
    });
  });
}

/** `python -m pip`'s version as [major, minor]. */
async function pipVersion(python: string): Promise<[number, number]> {
  const [, major, minor] = /^pip (\d+)\.(\d+)/.exec((await run(python, ['-m', 'pip', '--version'])).stdout) ?? [];
  return [Number(major), Number(minor)];
}

/** The manifest with the wheel's metadata file declared (PEP 658), under `hash`. */
function withMetadata(hash?: string) {
  writeFileSync(join(work, `${WHEEL}.metadata`), 'Metadata-Version: 2.1\nName: tinypkg\nVersion: 0.1.0\n');
  const m = manifest(sha256(WHEEL));
  Object.assign(m.rules[0], { 'core-metadata': { type: 'sha256', hash: hash ?? sha256(`${WHEEL}.metadata`) } });
  return m;
}

// pip reads `core-metadata` from JSON pages since 23.2 (PEP 714). Which pip is first on PATH depends on
// the machine (pyenv's 23.2 here, Debian's 23.0 where /usr/bin comes first); each gets its own expectation.
test("pip and a declared metadata file (PEP 658): 23.2 and later read it before the wheel, through the gateway's redirects, and check its hash; older ones fetch the wheel alone", async () => {
  const [major, minor] = await pipVersion('python3');
  const readsCoreMetadata = major > 23 || (major === 23 && minor >= 2);
  await withGateway(withMetadata(), async (gw) => {
    const target = join(work, 'target-metadata');
    const before = fetched.length;
    await pip(['install', '--no-deps', '--target', target, '--index-url', `http://127.0.0.1:${gw.port}/simple/`, 'tinypkg==0.1.0'], join(work, 'cache-metadata'));
    assert.equal(readFileSync(join(target, 'tinypkg', '__init__.py'), 'utf8'), "VALUE = 'from the gateway test'\n");
    assert.deepEqual(fetched.slice(before), readsCoreMetadata ? [`/files/${WHEEL}.metadata`, `/files/${WHEEL}`] : [`/files/${WHEEL}`], `pip ${major}.${minor}`);
    if (!readsCoreMetadata) return;
    await new Promise((r) => setTimeout(r, 200));
    const metadata = gw.lines.find((l) => l.path === `/simple/tinypkg/${WHEEL}.metadata`);
    assert.equal(metadata?.status, 307);
    assert.deepEqual(metadata?.capture, { type: 'python', package: 'tiny', version: '0.1.0', file: `${WHEEL}.metadata`, url: `${filesBase}/files/${WHEEL}.metadata` });
  });
  if (!readsCoreMetadata) return;
  // pip checks the metadata file against the page's hash too.
  await withGateway(withMetadata('0'.repeat(64)), async (gw) => {
    await assert.rejects(
      pip(['install', '--no-deps', '--target', join(work, 'target-bad-metadata'), '--index-url', `http://127.0.0.1:${gw.port}/simple/`, 'tinypkg==0.1.0'], join(work, 'cache-bad-metadata')),
      (e: { stderr: string }) => /THESE PACKAGES DO NOT MATCH THE HASHES/.test(e.stderr),
    );
  });
});

test("Debian 12's pip 23.0 installs a wheel whose rule declares core-metadata: the JSON page carries no dist-info-metadata, on which pip 22.3 to 23.1 fail (PEP 714)", async () => {
  assert.deepEqual(await pipVersion(DEBIAN_PYTHON), [23, 0]);
  await withGateway(withMetadata(), async (gw) => {
    const target = join(work, 'target-debian-pip');
    await pip(['install', '--no-deps', '--target', target, '--index-url', `http://127.0.0.1:${gw.port}/simple/`, 'tinypkg==0.1.0'], join(work, 'cache-debian-pip'), {}, DEBIAN_PYTHON);
    assert.equal(readFileSync(join(target, 'tinypkg', '__init__.py'), 'utf8'), "VALUE = 'from the gateway test'\n");
  });
});

test('pip passes over a yanked release and one for another Python (PEP 592, data-requires-python) for the newest it can use', async () => {
  const m = manifest(sha256(WHEEL));
  // Newer than the wheel (0.1.0): the sdist 0.2.0 yanked, a 0.3.0 that needs Python 4.
  Object.assign(m.rules[1], { yanked: 'broken build' });
  m.rules.push({ ...m.rules[0], version: '0.3.0', 'file-name': 'tinypkg-0.3.0-py3-none-any.whl', 'backend-url': `${filesBase}/files/tinypkg-0.3.0-py3-none-any.whl`, 'requires-python': '>=4' });
  await withGateway(m, async (gw) => {
    const out = join(work, 'dl-newest');
    await pip(['download', '--no-deps', '--index-url', `http://127.0.0.1:${gw.port}/simple/`, '-d', out, 'tinypkg'], join(work, 'cache-newest'));
    assert.deepEqual(readdirSync(out), [WHEEL]);
  });
});

test('pip install from the gateway serving HTTPS itself (--tls-cert), the index trusted with --cert', async () => {
  const ca = makeCerts(join(work, 'certs'));
  const gw = await startGateway({ manifest: manifest(sha256(WHEEL)), args: ['--tls-cert', ca.cert, '--tls-key', ca.key] });
  try {
    const target = join(work, 'target-https');
    await pip(['install', '--no-deps', '--target', target, '--cert', ca.caCert, '--index-url', `https://127.0.0.1:${gw.port}/simple/`, 'tinypkg==0.1.0'], join(work, 'cache-https'));
    assert.equal(readFileSync(join(target, 'tinypkg', '__init__.py'), 'utf8'), "VALUE = 'from the gateway test'\n");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(gw.lines.find((l) => l.path === `/simple/tinypkg/${WHEEL}`)?.status, 307);
  } finally {
    await gw.stop();
  }
});

test('pip download of the wheel and the sdist through the index', async () => {
  await withGateway(manifest(sha256(WHEEL)), async (gw) => {
    const out = join(work, 'dl');
    const index = `http://127.0.0.1:${gw.port}/simple/`;
    await pip(['download', '--no-deps', '--index-url', index, '-d', out, 'tinypkg==0.1.0'], join(work, 'cache-dl'));
    await pip(['download', '--no-deps', '--no-binary', ':all:', '--index-url', index, '-d', out, 'tinypkg==0.2.0'], join(work, 'cache-dl'));
    assert.equal(sha256(join('dl', WHEEL)), sha256(WHEEL));
    assert.equal(sha256(join('dl', SDIST)), sha256(SDIST));
  });
});

test('a wrong hash in the manifest makes pip fail', async () => {
  await withGateway(manifest('0'.repeat(64)), async (gw) => {
    await assert.rejects(
      pip(['download', '--no-deps', '--index-url', `http://127.0.0.1:${gw.port}/simple/`, '-d', join(work, 'bad'), 'tinypkg==0.1.0'], join(work, 'cache-bad')),
      (e: { stderr: string }) => /THESE PACKAGES DO NOT MATCH THE HASHES/.test(e.stderr),
    );
  });
});

test('pip with HTML only (a proxy in front of the gateway that asks for text/html)', async () => {
  await withGateway(manifest(sha256(WHEEL)), async (gw) => {
    // A forward proxy that replaces pip's Accept with text/html only.
    const pageTypes: string[] = [];
    const proxy = createServer((req, res) => {
      const url = new URL(req.url ?? '/');
      const headers = { ...req.headers, accept: 'text/html' };
      const upstream = httpRequest({ host: url.hostname, port: url.port, path: url.pathname + url.search, method: req.method, headers }, (up) => {
        if (url.pathname === '/simple/tinypkg/') pageTypes.push(String(up.headers['content-type']));
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      await pip(['download', '--no-deps', '--proxy', proxyUrl, '--index-url', `http://127.0.0.1:${gw.port}/simple/`, '-d', join(work, 'html'), 'tinypkg==0.1.0'], join(work, 'cache-html'));
      assert.equal(sha256(join('html', WHEEL)), sha256(WHEEL));
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(gw.lines.some((l) => l.path === '/simple/tinypkg/' && l.status === 200));
      assert.deepEqual(pageTypes, ['text/html; charset=utf-8'], 'pip read the HTML page');
    } finally {
      proxy.close();
    }
  });
});

test('a second pip run revalidates the project page (304)', async () => {
  await withGateway(manifest(sha256(WHEEL)), async (gw) => {
    const cache = join(work, 'cache-reval');
    const args = (d: string) => ['download', '--no-deps', '--trusted-host', '127.0.0.1', '--index-url', `http://127.0.0.1:${gw.port}/simple/`, '-d', join(work, d), 'tinypkg==0.1.0'];
    await pip(args('r1'), cache);
    await pip(args('r2'), cache);
    await new Promise((r) => setTimeout(r, 200));
    const pages = gw.lines.filter((l) => l.path === '/simple/tinypkg/');
    assert.deepEqual(pages.map((l) => l.status), [200, 304]);
    assert.equal(pages[1].outcome, 'not-modified');
  });
});
