// The public listener over TLS (--tls-cert, --tls-key): HTTPS answers, the
// certificate read again when its files change or on SIGHUP (a renewal
// without a restart), a pair that cannot serve refused at start-up and kept
// out at reload, handshakes bounded by --headers-timeout. Real gateway
// processes, certificates made with openssl.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { rawRequest, statusOf } from './helpers/http-client.ts';
import { makeCerts, waitUntil, type TestCa } from './helpers/registry.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const MANIFEST = {
  rules: [
    { type: 'file-v1', domain: '127.0.0.1', 'package-id': 'tool', 'incoming-path': '/tool-{v}.tgz', 'outgoing-url': 'https://github.com/o/tool/releases/download/v{v}/tool.tgz' },
  ],
};

let ca: TestCa;
let work: string;
before(() => {
  work = tempDir('gw-tls-listener-');
  ca = makeCerts(join(work, 'certs'));
});

/** The certificate in use, as a gateway's live files, which the test replaces. */
function liveFiles(name: string): { cert: string; key: string } {
  const live = { cert: join(work, `${name}.crt`), key: join(work, `${name}.key`) };
  copyFileSync(ca.cert, live.cert);
  copyFileSync(ca.key, live.key);
  return live;
}

/**
 * The serial number of the certificate a new connection gets, asking for
 * `servername` (SNI) if given; checked against the test CA unless `verify`
 * is false.
 */
function servedSerial(port: number, verify = true, servername?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = verify ? { ca: readFileSync(ca.caCert), checkServerIdentity: () => undefined } : { rejectUnauthorized: false };
    const socket = tlsConnect({ host: '127.0.0.1', port, servername, ...check }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.once('error', reject);
  });
}

const serialOf = (file: string) => new X509Certificate(readFileSync(file)).serialNumber;

function get(port: number, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, ca: readFileSync(ca.caCert), agent: false }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.once('error', reject);
    req.end();
  });
}

let gw: GatewayProcess;
let live: { cert: string; key: string };
before(async () => {
  live = liveFiles('single');
  gw = await startGateway({ manifest: MANIFEST, args: ['--tls-cert', live.cert, '--tls-key', live.key, '--watch-interval', '200'] });
});
after(() => gw.stop());

test('HTTPS: the redirect and its analytics line; the certificate and its expiry are logged and in /metrics', async () => {
  const r = await get(gw.port, '/tool-1.4.0.tgz');
  assert.equal(r.status, 307);
  assert.equal(r.headers.location, 'https://github.com/o/tool/releases/download/v1.4.0/tool.tgz');
  const [line] = await gw.linesFor(String(r.headers['x-request-id']));
  assert.equal(line.status, 307);
  assert.equal(line.client.ip, '127.0.0.1');
  const notAfter = new Date(new X509Certificate(readFileSync(ca.cert)).validTo);
  const loaded = await gw.waitForLog((l) => l.msg === 'certificate loaded');
  assert.equal(loaded.notAfter, notAfter.toISOString());
  // The test certificate is valid for 2 days: it is warned about.
  const soon = await gw.waitForLog((l) => l.msg === 'certificate expires soon');
  assert.equal(soon.level, 40);
  assert.equal(soon.daysLeft, 1);
  const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text();
  assert.match(metrics, new RegExp(`^gateway_tls_certificate_expiry_timestamp_seconds ${notAfter.getTime() / 1000}$`, 'm'));
});

test('HTTPS: a request the parser refuses gets its 400 and its line, as over plain HTTP', async () => {
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: gw.port, ca: readFileSync(ca.caCert) }, () => socket.write('NOT HTTP\r\n\r\n'));
    let got = '';
    socket.on('data', (c) => (got += c.toString('latin1')));
    socket.once('error', reject);
    socket.once('close', () => resolve(got));
  });
  assert.match(answer, /^HTTP\/1\.1 400 /);
  const id = /x-request-id: (\S+)/i.exec(answer)?.[1];
  const [line] = await gw.linesFor(String(id));
  assert.equal(line.outcome, 'rejected');
});

test('one file holding both the certificate and its key serves as --tls-cert and --tls-key', async () => {
  const both = join(work, 'both.pem');
  writeFileSync(both, Buffer.concat([readFileSync(ca.key), readFileSync(ca.cert)]));
  const g = await startGateway({ manifest: MANIFEST, args: ['--tls-cert', both, '--tls-key', both] });
  try {
    assert.equal(await servedSerial(g.port), serialOf(ca.cert));
  } finally {
    await g.stop();
  }
});

test('a renewed certificate is served to new connections without a restart; a pair that does not match is logged and kept out', { timeout: 30_000 }, async () => {
  const before = serialOf(live.cert);
  assert.equal(await servedSerial(gw.port), before);
  const renewed = ca.issue('renewed', 5);
  // The certificate alone: it does not match the key in use. Tried twice, then logged; the old pair keeps serving.
  copyFileSync(renewed.cert, live.cert);
  const refused = await gw.waitForLog((l) => l.msg === 'certificate not reloaded; the one in use keeps serving');
  assert.match(String(refused.error), /--tls-key .*: not the key of the certificate/);
  assert.equal(await servedSerial(gw.port), before);
  assert.equal((await get(gw.port, '/tool-1.0.0.tgz')).status, 307);
  // Then its key: the pair is read and served.
  copyFileSync(renewed.key, live.key);
  await waitUntil(async () => (await servedSerial(gw.port)) === serialOf(renewed.cert), 10_000, () => 'the renewed certificate was not served');
  const reloaded = await gw.waitForLog((l) => l.msg === 'certificate reloaded: new connections get it');
  assert.equal(reloaded.notAfter, new Date(new X509Certificate(readFileSync(renewed.cert)).validTo).toISOString());
  const metrics = await (await fetch(`http://127.0.0.1:${gw.adminPort}/metrics`)).text();
  assert.match(metrics, new RegExp(`^gateway_tls_certificate_expiry_timestamp_seconds ${Date.parse(String(reloaded.notAfter)) / 1000}$`, 'm'));
});

test("certbot's layout: a renewal that points the live/ symlinks at new archive/ files is served without a restart or a signal", { timeout: 30_000 }, async () => {
  const dir = join(work, 'letsencrypt');
  mkdirSync(join(dir, 'archive'), { recursive: true });
  mkdirSync(join(dir, 'live'), { recursive: true });
  const install = (n: number, pair: { cert: string; key: string }) => {
    copyFileSync(pair.cert, join(dir, 'archive', `fullchain${n}.pem`));
    copyFileSync(pair.key, join(dir, 'archive', `privkey${n}.pem`));
    // As certbot does: one link, then the other.
    for (const [link, target] of [['fullchain.pem', `fullchain${n}.pem`], ['privkey.pem', `privkey${n}.pem`]]) {
      symlinkSync(join('..', 'archive', target), join(dir, 'live', `${link}.new`));
      renameSync(join(dir, 'live', `${link}.new`), join(dir, 'live', link));
    }
  };
  const first = ca.issue('certbot-1');
  install(1, first);
  const g = await startGateway({ manifest: MANIFEST, args: ['--tls-cert', join(dir, 'live', 'fullchain.pem'), '--tls-key', join(dir, 'live', 'privkey.pem'), '--watch-interval', '200'] });
  try {
    assert.equal(await servedSerial(g.port), serialOf(first.cert));
    const second = ca.issue('certbot-2');
    install(2, second);
    await waitUntil(async () => (await servedSerial(g.port)) === serialOf(second.cert), 10_000, () => 'the renewed certificate was not served');
    assert.equal((await get(g.port, '/tool-1.0.0.tgz')).status, 307);
  } finally {
    await g.stop();
  }
});

test('a handshake that does not finish within --headers-timeout is closed and counted; plain HTTP on the TLS port gets a plain 400 saying so, and is counted', { timeout: 30_000 }, async () => {
  const g = await startGateway({ manifest: MANIFEST, args: ['--tls-cert', ca.cert, '--tls-key', ca.key, '--headers-timeout', '500'] });
  try {
    const started = Date.now();
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const socket = netConnect(g.port, '127.0.0.1');
      socket.once('error', reject);
      socket.once('close', () => resolve(Date.now() - started));
    });
    assert.ok(closedAfter >= 400 && closedAfter < 5000, `closed after ${closedAfter} ms`);
    // Plain HTTP: told so in plain HTTP, as nginx does, and the connection closed.
    const plain = await new Promise<string>((resolve, reject) => {
      const socket = netConnect(g.port, '127.0.0.1', () => socket.write('GET /tool-1.0.0.tgz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'));
      let got = '';
      socket.on('data', (c) => (got += c.toString('latin1')));
      socket.once('error', reject);
      socket.once('close', () => resolve(got));
    });
    assert.match(plain, /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\n\r\nThis port speaks HTTPS: use https:\/\/ in the URL\.\n$/);
    const metrics = await (await fetch(`http://127.0.0.1:${g.adminPort}/metrics`)).text();
    assert.match(metrics, /^gateway_tls_handshake_errors_total 2$/m);
    assert.equal(g.lines.length, 0, 'no analytics line: no request was made');
  } finally {
    await g.stop();
  }
});

test('a TLS handshake on the plain port (docker, podman and skopeo try HTTPS first) gets its 400 and closes, with no analytics line and no count; a request the parser refuses still has both', async () => {
  const g = await startGateway({ manifest: MANIFEST });
  try {
    const failed = await new Promise<Error>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: g.port, rejectUnauthorized: false }, () => reject(new Error('a TLS session on the plain port')));
      socket.once('error', resolve);
    });
    assert.match(failed.message, /wrong version number|packet length too long/);
    const metrics = async () => (await fetch(`http://127.0.0.1:${g.adminPort}/metrics`)).text();
    assert.doesNotMatch(await metrics(), /outcome="rejected"/);
    assert.equal(statusOf(await rawRequest(g.port, 'GET /a b c HTTP/1.1\r\n\r\n')), 400);
    await waitUntil(() => g.lines.length > 0, 2000, () => 'no line for the refused request');
    assert.deepEqual(g.lines.map((l) => [l.status, l.outcome]), [[400, 'rejected']]);
    assert.match(await metrics(), /^gateway_requests_total\{outcome="rejected",kind="none"\} 1$/m);
  } finally {
    await g.stop();
  }
});

test('SIGHUP reads the certificate again, in one process and, with --workers, in each worker', { timeout: 60_000 }, async () => {
  for (const workers of [1, 2]) {
    const files = liveFiles(`sighup-${workers}`);
    // A poll far apart: only the signal can make the gateway read the files.
    const g = await startGateway({ manifest: MANIFEST, args: ['--tls-cert', files.cert, '--tls-key', files.key, '--workers', String(workers), '--watch-interval', '3600000'] });
    try {
      const renewed = ca.issue(`renewed-${workers}`);
      copyFileSync(renewed.cert, files.cert);
      copyFileSync(renewed.key, files.key);
      g.child.kill('SIGHUP');
      await waitUntil(() => g.logs.filter((l) => l.msg === 'certificate reloaded: new connections get it').length === workers, 10_000, () => `${workers} process(es) did not reload`);
      // Connections are spread over the workers: every one gets the new certificate.
      for (let i = 0; i < 8; i++) assert.equal(await servedSerial(g.port), serialOf(renewed.cert));
    } finally {
      await g.stop();
    }
  }
});

test('--workers 2: a replacement worker that cannot start (its certificate broken meanwhile) is tried again after 1 s, then 2 s, not in a loop', { timeout: 30_000 }, async () => {
  const files = liveFiles('replacement');
  const g = await startGateway({ manifest: MANIFEST, args: ['--tls-cert', files.cert, '--tls-key', files.key, '--workers', '2', '--watch-interval', '3600000'] });
  try {
    const good = readFileSync(files.cert);
    writeFileSync(files.cert, 'not a certificate\n');
    const [victim] = g.logs.filter((l) => l.msg === 'worker listening').map((l) => l.pid as number);
    process.kill(victim, 'SIGKILL');
    const deaths = () => g.logs.filter((l) => l.msg === 'worker died, starting another');
    await waitUntil(() => deaths().length === 3, 10_000, () => `deaths: ${JSON.stringify(deaths())}`);
    assert.deepEqual(deaths().map((l) => l.restartInMs), [0, 1000, 2000]);
    const [, first, second] = deaths().map((l) => l.time as number);
    assert.ok(second - first >= 1000, `tried again after ${second - first} ms`);
    // Mended: the next try starts, and both workers serve again.
    writeFileSync(files.cert, good);
    await waitUntil(() => g.logs.filter((l) => l.msg === 'worker listening').length === 3, 10_000, () => 'no replacement listening');
    assert.equal(deaths().length, 3);
    for (let i = 0; i < 4; i++) assert.equal(await servedSerial(g.port), serialOf(files.cert));
  } finally {
    await g.stop();
  }
});

test('an expired certificate serves (as nginx does) and is warned about', async () => {
  const expired = ca.issue('expired', -1);
  const g = await startGateway({ manifest: MANIFEST, args: ['--tls-cert', expired.cert, '--tls-key', expired.key] });
  try {
    assert.equal(await servedSerial(g.port, false), serialOf(expired.cert));
    const warned = await g.waitForLog((l) => l.msg === 'certificate has expired: clients refuse it');
    assert.equal(warned.level, 40);
    assert.equal(warned.notAfter, new Date(new X509Certificate(readFileSync(expired.cert)).validTo).toISOString());
  } finally {
    await g.stop();
  }
});

test('several certificates: each serves the names it lists (SNI, wildcards for one label), the first any other; each is renewed on its own; /metrics has the earliest expiry', { timeout: 30_000 }, async () => {
  const a = liveFiles('sni-a');
  const b = ca.issue('sni-b', 5, ['*.b.test', 'b.test']);
  const g = await startGateway({ manifest: MANIFEST, args: ['--tls-cert', a.cert, '--tls-key', a.key, '--tls-cert', b.cert, '--tls-key', b.key, '--watch-interval', '200'] });
  try {
    const [serialA, serialB] = [serialOf(a.cert), serialOf(b.cert)];
    assert.equal(await servedSerial(g.port, true, 'b.test'), serialB);
    assert.equal(await servedSerial(g.port, true, 'dl.B.test'), serialB);
    // A wildcard covers one label only; a name no certificate lists, and no name at all (an address), get the first.
    assert.equal(await servedSerial(g.port, true, 'x.dl.b.test'), serialA);
    assert.equal(await servedSerial(g.port, true, 'other.test'), serialA);
    assert.equal(await servedSerial(g.port), serialA);
    const metrics = await (await fetch(`http://127.0.0.1:${g.adminPort}/metrics`)).text();
    const earliest = new Date(new X509Certificate(readFileSync(a.cert)).validTo).getTime() / 1000;
    assert.match(metrics, new RegExp(`^gateway_tls_certificate_expiry_timestamp_seconds ${earliest}$`, 'm'));
    // The second pair renewed in place: its names get the new one, the others still the first.
    const renewed = ca.issue('sni-b-renewed', 5, ['*.b.test', 'b.test']);
    copyFileSync(renewed.cert, b.cert);
    copyFileSync(renewed.key, b.key);
    await waitUntil(async () => (await servedSerial(g.port, true, 'dl.b.test')) === serialOf(renewed.cert), 10_000, () => 'the renewed second certificate was not served');
    assert.equal(await servedSerial(g.port, true, 'other.test'), serialA);
    // And a request over it is answered.
    assert.equal((await get(g.port, '/tool-2.0.0.tgz')).status, 307);
  } finally {
    await g.stop();
  }
});

test('a certificate that cannot serve stops the start with exit 1 and a message naming the flag', () => {
  const manifest = join(work, 'm.json');
  writeFileSync(manifest, JSON.stringify(MANIFEST));
  const other = ca.issue('other');
  const notPem = join(work, 'not.pem');
  writeFileSync(notPem, 'not a certificate\n');
  const cases: [string[], RegExp][] = [
    [['--tls-cert', ca.cert, '--tls-key', other.key], /--tls-key .*other\.key: not the key of the certificate in/],
    [['--tls-cert', notPem, '--tls-key', ca.key], /--tls-cert .*not\.pem: not a PEM certificate/],
    [['--tls-cert', ca.cert, '--tls-key', notPem], /--tls-key .*not\.pem: not a PEM private key/],
    [['--tls-cert', join(work, 'missing.crt'), '--tls-key', ca.key], /--tls-cert .*missing\.crt: cannot be read \(ENOENT\)/],
    [['--tls-cert', ca.cert], /--tls-cert and --tls-key go together/],
    [['--tls-cert', ca.cert, '--tls-key', ca.key, '--tls-cert', ca.cert], /--tls-cert and --tls-key go together, in pairs: 2 certificate\(s\), 1 key\(s\)/],
    [['--tls-cert', ca.cert, '--tls-key', ca.key, '--tls-cert', ca.cert, '--tls-key', other.key], /--tls-key .*other\.key: not the key of the certificate in/],
  ];
  for (const workers of ['1', '2']) {
    for (const [args, message] of cases) {
      const r = spawnSync(process.execPath, [CLI, '--manifest', manifest, '--port', '0', '--admin-port', '-1', '--workers', workers, ...args], { encoding: 'utf8', timeout: 20_000 });
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  }
});
