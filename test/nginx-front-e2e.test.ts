// README's "Behind nginx" recipe, run by Debian's nginx in front of the
// gateway: its server block is read from README.md and given only an
// address, a certificate and the gateway's port. Real clients through it:
// curl (a redirect, and the client's address in the line whatever
// X-Forwarded-For it sends), pip and npm (HTTPS ends at nginx, so npm's
// tarball URLs must say https), and a registry blob streamed through both
// (proxy_buffering off: nginx spools nothing).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { makeCerts, spawnOwned, waitUntil, type TestCa } from './helpers/registry.ts';
import { buildDistributions, pip, WHEEL } from './helpers/python-dists.ts';
import { npm, npmClients } from './helpers/npm-clients.ts';

const run = promisify(execFile);
const work = tempDir('gw-nginx-');
/** nginx's address: a loopback address of its own, so that port 443 is free whatever else listens on 127.0.0.1. */
const NGINX = '127.0.0.93';
/** The address curl sends from: not nginx's, and not trusted by the gateway. */
const CLIENT = '127.0.0.5';
const blob = randomBytes(24 * 1024 * 1024);
const blobDigest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;

let ca: TestCa;
let backend: Server;
let base: string;
let tarball: Buffer;
let gw: GatewayProcess;
let nginx: ChildProcess;

/** A package tarball as npm packs it: package/package.json and package/index.js, gzipped. */
async function packTarball(): Promise<Buffer> {
  const dir = join(work, 'pack', 'package');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'tiny-gw-pkg', version: '1.0.0', main: 'index.js', license: 'MIT' }));
  writeFileSync(join(dir, 'index.js'), "module.exports = 'through nginx';\n");
  const file = join(work, 'tiny-gw-pkg-1.0.0.tgz');
  await run('tar', ['czf', file, '-C', join(work, 'pack'), 'package']);
  return readFileSync(file);
}

/** The README's nginx server block, listening on NGINX with `ca`'s certificate and passing to `port`. */
function serverBlock(port: number): string {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const recipe = /### Behind nginx[\s\S]*?```nginx\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(recipe !== undefined, 'README has an nginx block under "Behind nginx"');
  const site = ca.issue('nginx', 2, ['dl.example.com', NGINX]);
  const listen = 'listen 443 ssl;';
  const pass = 'proxy_pass http://127.0.0.1:8081;';
  assert.ok(recipe.includes(listen) && recipe.includes(pass), recipe);
  return recipe.replace(listen, `listen ${NGINX}:443 ssl;\n  ssl_certificate ${site.cert};\n  ssl_certificate_key ${site.key};`).replace(pass, `proxy_pass http://127.0.0.1:${port};`);
}

before(async () => {
  ca = makeCerts(join(work, 'certs'));
  buildDistributions(work);
  tarball = await packTarball();
  const wheel = readFileSync(join(work, WHEEL));
  backend = createServer((req, res) => {
    const url = req.url ?? '';
    const send = (type: string, body: Buffer | string) => res.writeHead(200, { 'content-type': type, 'content-length': Buffer.byteLength(body) }).end(body);
    if (url === `/files/${WHEEL}`) return send('application/octet-stream', wheel);
    if (url === '/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz') return send('application/octet-stream', tarball);
    if (url === `/v2/org/app/blobs/${blobDigest}`) return send('application/octet-stream', blob);
    if (url === '/tiny-gw-pkg') {
      const integrity = 'sha512-' + createHash('sha512').update(tarball).digest('base64');
      const dist = { tarball: `${base}/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz`, integrity };
      return send('application/json', JSON.stringify({ name: 'tiny-gw-pkg', 'dist-tags': { latest: '1.0.0' }, versions: { '1.0.0': { name: 'tiny-gw-pkg', version: '1.0.0', main: 'index.js', dist } } }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  const wheelHash = createHash('sha256').update(wheel).digest('hex');
  gw = await startGateway({
    manifest: {
      rules: [
        { type: 'file-v1', domain: 'dl.example.com', 'package-id': 'tool', 'incoming-path': '/tool-{version}.tgz', 'outgoing-url': 'https://github.com/example/tool/releases/download/v{version}/tool-{version}.tgz' },
        {
          type: 'python-v1', domain: NGINX, 'package-id': 'tiny', 'package-name': 'TinyPkg', version: '0.1.0', 'file-name': WHEEL,
          'backend-url': `${base}/files/${WHEEL}`, 'hash-value': { type: 'sha256', hash: wheelHash },
        },
        { type: 'npm-v1', domain: NGINX, 'package-id': 'pkg-tiny', 'package-name': 'tiny-gw-pkg', registry: base },
        { type: 'docker-v1', domain: NGINX, 'package-id': 'app', 'repository-name': 'org/app', registry: 'registry.test', 'always-proxy': true },
      ],
    },
    // Only nginx is trusted to name the client.
    args: ['--trust-proxy', '127.0.0.1', '--upstream', `registry.test=${base}`],
  });
  const dir = join(work, 'nginx');
  mkdirSync(dir);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t)};`).join('\n');
  writeFileSync(join(dir, 'nginx.conf'), [
    'daemon off;', 'master_process off;', `pid ${join(dir, 'nginx.pid')};`, `error_log ${join(dir, 'error.log')} warn;`, 'events { worker_connections 64; }',
    `http {\n  access_log off;\n${temp}\n${serverBlock(gw.port)}\n}\n`,
  ].join('\n'));
  nginx = spawnOwned('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
  const accepts = () =>
    new Promise<boolean>((resolve) => {
      const socket = connect(443, NGINX);
      socket.once('connect', () => (socket.destroy(), resolve(true))).once('error', () => resolve(false));
    });
  await waitUntil(accepts, 10_000, () => `nginx did not listen (Debian package nginx; port 443 needs root): ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
});

after(async () => {
  if (nginx?.exitCode === null) {
    nginx.kill('SIGTERM');
    await new Promise((r) => nginx.once('exit', r));
  }
  await gw?.stop();
  backend?.close();
});

/** curl through nginx to `path` on `host` (resolved to nginx), from the client address. */
function curl(host: string, path: string, ...more: string[]) {
  return run('curl', ['-sS', '--cacert', ca.caCert, '--resolve', `${host}:443:${NGINX}`, '--interface', CLIENT, ...more, `https://${host}${path}`], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024, timeout: 60_000 });
}

test('curl through nginx: the redirect for its host name, and the line names the client, not nginx nor what the client claims', async () => {
  const { stdout } = await curl('dl.example.com', '/tool-1.4.0.tgz', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-H', 'X-Forwarded-For: 203.0.113.9');
  assert.equal(stdout.toString(), '307 https://github.com/example/tool/releases/download/v1.4.0/tool-1.4.0.tgz');
  const line = await gw.waitForLine((l) => l.path === '/tool-1.4.0.tgz');
  assert.equal(line.host, 'dl.example.com');
  assert.equal(line.client.ip, CLIENT);
  assert.equal(line.capture?.package, 'tool');
});

test('a blob proxied through nginx streams whole, and nginx spools none of it to disk (proxy_buffering off)', async () => {
  // A client slower than the gateway: with buffering on, nginx writes what the client has not taken to a temporary file, and warns.
  const { stdout } = await curl(NGINX, `/v2/org/app/blobs/${blobDigest}`, '--limit-rate', '16M');
  assert.equal(stdout.length, blob.length);
  assert.equal(`sha256:${createHash('sha256').update(stdout).digest('hex')}`, blobDigest);
  assert.doesNotMatch(readFileSync(join(work, 'nginx', 'error.log'), 'utf8'), /buffered to a temporary file/);
  const line = await gw.waitForLine((l) => l.path === `/v2/org/app/blobs/${blobDigest}`);
  assert.equal(line.status, 200);
  assert.equal(line.outcome, 'proxy');
});

test('pip installs through nginx over HTTPS', async () => {
  const target = join(work, 'pip-target');
  await pip(['install', '--no-deps', '--target', target, '--cert', ca.caCert, '--index-url', `https://${NGINX}/simple/`, 'tinypkg==0.1.0'], join(work, 'pip-cache'));
  assert.equal(readFileSync(join(target, 'tinypkg', '__init__.py'), 'utf8'), "VALUE = 'from the gateway test'\n");
  assert.equal((await gw.waitForLine((l) => l.path === `/simple/tinypkg/${WHEEL}`)).status, 307);
});

test('npm installs through nginx over HTTPS: tarball URLs say https (X-Forwarded-Proto), and npm follows them', async () => {
  const { stdout } = await curl(NGINX, '/tiny-gw-pkg');
  assert.equal(JSON.parse(stdout.toString()).versions['1.0.0'].dist.tarball, `https://${NGINX}/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz`);
  const dir = join(work, 'npm-project');
  mkdirSync(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'through-nginx', version: '0.0.0', private: true }));
  // npm 12, a dev dependency.
  await npm(['install', '--registry', `https://${NGINX}/`, '--cafile', ca.caCert, '--cache', join(work, 'npm-cache'), '--no-audit', '--no-fund', '--fetch-retries=0', 'tiny-gw-pkg'], dir, npmClients[1]);
  assert.equal(readFileSync(join(dir, 'node_modules', 'tiny-gw-pkg', 'index.js'), 'utf8'), "module.exports = 'through nginx';\n");
  assert.equal((await gw.waitForLine((l) => l.path === '/tiny-gw-pkg/-/tiny-gw-pkg-1.0.0.tgz')).status, 307);
});
