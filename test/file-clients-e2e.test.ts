// SPEC §5 end to end with the real curl and wget: file rules redirect them
// to a local file server standing in for a release host, and they download
// the file from there, as `curl -LO https://dl.example.com/tool-1.4.0.tgz`
// does. curl reaches the gateway under the rule's domain (--connect-to);
// wget through it as an HTTP proxy, which sends the request target in
// absolute form (`GET http://dl.example.com/...`). curl also posts
// telemetry events (SPEC §7).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { makeCerts } from './helpers/registry.ts';

const run = promisify(execFile);
const work = tempDir('gw-files-');
const D = 'dl.example.com';
const tarball = randomBytes(256 * 1024);
const fetched: string[] = [];
let files: Server;
let gw: GatewayProcess;

before(async () => {
  files = createServer((req, res) => {
    fetched.push(req.url ?? '');
    if ((req.url ?? '').startsWith('/releases/download/v1.4.0/tool-1.4.0.tgz')) {
      return void res.writeHead(200, { 'content-type': 'application/gzip', 'content-length': tarball.length }).end(req.method === 'HEAD' ? undefined : tarball);
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => files.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(files.address() as AddressInfo).port}`;
  gw = await startGateway({
    manifest: {
      rules: [
        { type: 'file-v1', domain: D, 'package-id': 'tool', 'incoming-path': '/tool-{version}.tgz', 'outgoing-url': `${base}/releases/download/v{version}/tool-{version}.tgz` },
        { type: 'file-v1', domain: D, 'package-id': 'tool', 'incoming-path': '/инструмент-{version}.tgz', 'outgoing-url': `${base}/releases/download/v{version}/tool-{version}.tgz` },
        { type: 'file-v2', domain: D, 'package-id': 'tool', 'incoming-path': '^/latest/(?<name>tool-[0-9.]+\\.tgz)$', 'outgoing-url': `${base}/releases/download/v1.4.0/{name}` },
        { type: 'telemetry-v1', domain: D, 'package-id': 'tool', 'incoming-path': '/telemetry', 'access-tokens': ['s3cret'] },
      ],
    },
  });
});
after(async () => {
  await gw.stop();
  files.close();
});

/** A folder of its own, to download into. */
function folder(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir);
  return dir;
}

const curl = (args: string[], cwd: string) => run('curl', ['--silent', '--show-error', '--fail', '--connect-to', `${D}:80:127.0.0.1:${gw.port}`, ...args], { cwd, timeout: 30_000 });

test('curl -LO downloads the file the rule redirects to; the download is counted', async () => {
  const dir = folder('curl');
  await curl(['-LO', `http://${D}/tool-1.4.0.tgz`], dir);
  assert.deepEqual(readFileSync(join(dir, 'tool-1.4.0.tgz')), tarball);
  await new Promise((r) => setTimeout(r, 200));
  const line = gw.lines.find((l) => l.path === '/tool-1.4.0.tgz' && l.client.userAgent?.startsWith('curl/'));
  assert.equal(line?.status, 307);
  assert.deepEqual(line?.capture?.variables, { version: '1.4.0' });
});

test('curl: the query is merged into the target, a file-v2 rule redirects too, HEAD gets the 307 and its Location', async () => {
  const dir = folder('curl-more');
  await curl(['-L', '-o', 'with-query.tgz', `http://${D}/tool-1.4.0.tgz?source=readme`], dir);
  assert.deepEqual(readFileSync(join(dir, 'with-query.tgz')), tarball);
  assert.ok(fetched.includes('/releases/download/v1.4.0/tool-1.4.0.tgz?source=readme'), JSON.stringify(fetched));
  await curl(['-L', '-o', 'latest.tgz', `http://${D}/latest/tool-1.4.0.tgz`], dir);
  assert.deepEqual(readFileSync(join(dir, 'latest.tgz')), tarball);
  const { stdout } = await curl(['-I', `http://${D}/tool-1.4.0.tgz`], dir);
  assert.match(stdout, /^HTTP\/1\.1 307 /);
  assert.match(stdout, new RegExp(`\\r\\nlocation: http://127\\.0\\.0\\.1:\\d+/releases/download/v1\\.4\\.0/tool-1\\.4\\.0\\.tgz\\r\\n`, 'i'));
  // A file no rule names: the gateway's 404, and curl --fail fails.
  await assert.rejects(curl(['-LO', `http://${D}/other-1.0.zip`], dir), /404/);
});

test('curl and wget: a path with non-ASCII text, which curl percent-encodes in lower case and wget in upper case', async () => {
  const dir = folder('non-ascii');
  await curl(['-L', '-o', 'by-curl.tgz', `http://${D}/инструмент-1.4.0.tgz`], dir);
  assert.deepEqual(readFileSync(join(dir, 'by-curl.tgz')), tarball);
  await run('wget', ['--quiet', '-O', 'by-wget.tgz', `http://127.0.0.1:${gw.port}/инструмент-1.4.0.tgz`, '--header', `Host: ${D}`], { cwd: dir, timeout: 30_000 });
  assert.deepEqual(readFileSync(join(dir, 'by-wget.tgz')), tarball);
  // Each client's own spelling of the path was counted.
  for (const path of ['/%d0%b8%d0%bd%d1%81%d1%82%d1%80%d1%83%d0%bc%d0%b5%d0%bd%d1%82-1.4.0.tgz', '/%D0%B8%D0%BD%D1%81%D1%82%D1%80%D1%83%D0%BC%D0%B5%D0%BD%D1%82-1.4.0.tgz']) {
    const line = await gw.waitForLine((l) => l.path === path);
    assert.equal(line.status, 307, path);
  }
});

test('curl -LO over HTTPS, the gateway serving TLS itself under the rule\'s domain (--tls-cert)', async () => {
  const ca = makeCerts(join(work, 'certs'));
  const cert = ca.issue('dl', 2, [D]);
  const tls = await startGateway({ manifestPath: gw.manifestPath, args: ['--tls-cert', cert.cert, '--tls-key', cert.key] });
  try {
    const dir = folder('https');
    await run('curl', ['--silent', '--show-error', '--fail', '--cacert', ca.caCert, '--connect-to', `${D}:443:127.0.0.1:${tls.port}`, '-LO', `https://${D}/tool-1.4.0.tgz`], { cwd: dir, timeout: 30_000 });
    assert.deepEqual(readFileSync(join(dir, 'tool-1.4.0.tgz')), tarball);
    await new Promise((r) => setTimeout(r, 200));
    const byCurl = tls.lines.find((l) => l.path === '/tool-1.4.0.tgz' && l.client.userAgent?.startsWith('curl/'));
    assert.equal(byCurl?.status, 307);
    assert.equal(byCurl?.host, D);
  } finally {
    await tls.stop();
  }
});

test('wget through the gateway as its HTTP proxy (a request target in absolute form) downloads the file', async () => {
  const dir = folder('wget');
  const env = { ...process.env, http_proxy: `http://127.0.0.1:${gw.port}`, no_proxy: '127.0.0.1' };
  await run('wget', ['--quiet', `http://${D}/tool-1.4.0.tgz`], { cwd: dir, env, timeout: 30_000 });
  assert.deepEqual(readFileSync(join(dir, 'tool-1.4.0.tgz')), tarball);
  await new Promise((r) => setTimeout(r, 200));
  const line = gw.lines.find((l) => l.path === '/tool-1.4.0.tgz' && l.client.userAgent?.startsWith('Wget/'));
  assert.equal(line?.status, 307);
  assert.equal(line?.host, D);
});

test('curl posts telemetry: each event in the body is a line; a body over --max-body-size gets 413, sent after 100 Continue or not', async () => {
  const dir = folder('telemetry');
  const post = (body: string, ...more: string[]) =>
    curl(['-o', '/dev/null', '-w', '%{http_code}', '-H', 'Authorization: Bearer s3cret', '-H', 'Content-Type: application/json', '--data-binary', body, ...more, `http://${D}/telemetry`], dir);
  assert.equal((await post('{"event":"install","version":"1.4.0"}\n{"event":"run"}')).stdout, '200');
  await new Promise((r) => setTimeout(r, 200));
  const events = gw.lines.filter((l) => l.path === '/telemetry' && l.status === 200).map((l) => l.capture?.event);
  assert.deepEqual(events, [{ event: 'install', version: '1.4.0' }, { event: 'run' }]);
  // 2 MB: curl asks Expect: 100-continue for a body this large; the answer is 413 either way, whole.
  writeFileSync(join(dir, 'big.json'), JSON.stringify({ pad: 'x'.repeat(2_000_000) }));
  for (const expect of [[], ['-H', 'Expect:']]) {
    await assert.rejects(post('@big.json', ...expect), /returned error: 413/);
  }
});
