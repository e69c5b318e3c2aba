// The registry proxy's own HTTP/1.1 client (src/proxy/backend-client.ts)
// against backends scripted byte by byte: body framings, kept-alive and
// stale connections, interim answers, malformed answers, the bytes of a
// blob through a client slower than the backend, clients that leave or
// pipeline, and random clients against random backends, over TCP and TLS.
// The gateway is the real process; the backends are plain TCP and TLS
// servers on 127.0.0.1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { Duplex } from 'node:stream';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { makeCerts, type TestCa } from './helpers/registry.ts';
import { metricValue, rawRequest, request } from './helpers/http-client.ts';
import { seededRandom } from './helpers/random.ts';

const D = 'cr.test';
/** Answers one request: `socket` is the backend connection, `connection` its number, `nth` the request's number on it, `head` the request's head as latin1. */
type Script = (socket: Socket, connection: number, nth: number, head: string) => void;
const scripts = new Map<string, Script>();
let connections = 0;
let backend: Server;
let gw: GatewayProcess;

/** A backend connection (TCP or TLS): each request is answered by the script its blob name names. */
function serveScripts(socket: Socket): void {
  const connection = ++connections;
  let nth = 0;
  let pending = '';
  socket.on('data', (d) => {
    pending += d.toString('latin1');
    for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
      const head = pending.slice(0, end);
      pending = pending.slice(end + 4);
      const script = scripts.get(head.split(' ')[1].replace(/^\/v2\/org\/app\/blobs\/(sha256:)?/, ''));
      if (script === undefined) socket.destroy();
      else script(socket, connection, ++nth, head);
    }
  });
  socket.on('error', () => undefined);
}

before(async () => {
  backend = createServer(serveScripts);
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  gw = await startGateway({
    manifest: { rules: [{ type: 'docker-v1', domain: D, 'package-id': 'app', 'repository-name': 'org/app', registry: 'backend.test', 'always-proxy': true }] },
    args: ['--upstream', `backend.test=http://127.0.0.1:${(backend.address() as AddressInfo).port}`, '--upstream-timeout', '500', '--send-timeout', '2000'],
  });
});
after(async () => {
  await gw.stop();
  backend.close();
});

const get = (name: string, method = 'GET') => request(gw.port, { method, path: `/v2/org/app/blobs/sha256:${name}`, host: D });
const answer = (body: string, extra = '') => `HTTP/1.1 200 OK\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`;

/** Writes `parts` one by one, `gap` ms apart, so that the gateway reads them separately. */
function trickle(socket: Socket, parts: (string | Buffer)[], gap = 15, then?: () => void): void {
  const next = (i: number): void => {
    if (i === parts.length) return then?.();
    socket.write(parts[i]);
    setTimeout(() => next(i + 1), gap);
  };
  next(0);
}

test('chunked bodies: sizes, extensions and trailers split anywhere; the connection is kept', async () => {
  scripts.set('chunked', (socket) =>
    trickle(socket, ['HTTP/1.1 200 OK\r\ntransfer-en', 'coding: chunked\r\ncontent-type: text/plain\r\n\r\n5\r', '\nhello\r\n', '1', '0;name="x y"\r\n0123456789', 'abcdef\r\n0\r\nx-trailer: 1\r', '\n\r\n']),
  );
  scripts.set('after', (socket) => socket.write(answer('next')));
  const before = connections;
  const res = await get('chunked');
  assert.equal(res.status, 200);
  assert.equal(res.text, 'hello0123456789abcdef');
  assert.equal(res.headers['content-type'], 'text/plain');
  assert.equal(res.headers['x-trailer'], undefined);
  assert.equal((await get('after')).text, 'next');
  assert.equal(connections - before, 1, 'the second request went over the same backend connection');
});

test('a body read until the backend closes, then a new connection', async () => {
  const used: number[] = [];
  scripts.set('until-close', (socket, connection) => {
    used.push(connection);
    trickle(socket, ['HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nfirst part, ', 'second part'], 15, () => socket.end());
  });
  scripts.set('after-close', (socket, connection) => {
    used.push(connection);
    socket.write(answer('fresh'));
  });
  const res = await get('until-close');
  assert.equal(res.status, 200);
  assert.equal(res.text, 'first part, second part');
  assert.equal((await get('after-close')).text, 'fresh');
  assert.notEqual(used[0], used[1]);
});

test('a kept-alive connection the backend drops is retried once on a new one', async () => {
  const used: [number, string][] = [];
  scripts.set('first', (socket, connection) => {
    used.push([connection, 'answered']);
    socket.write(answer('one'));
  });
  scripts.set('dropped', (socket, connection, nth) => {
    used.push([connection, nth > 1 ? 'dropped' : 'answered']);
    if (nth > 1) socket.destroy();
    else socket.write(answer('two'));
  });
  assert.equal((await get('first')).text, 'one');
  const res = await get('dropped');
  assert.equal(res.status, 200);
  assert.equal(res.text, 'two');
  assert.equal(used.length, 3);
  assert.deepEqual(used[1], [used[0][0], 'dropped'], 'the kept connection was tried first');
  assert.equal(used[2][1], 'answered');
  assert.notEqual(used[2][0], used[0][0]);
});

test('interim 1xx answers are skipped', async () => {
  scripts.set('hints', (socket) => trickle(socket, ['HTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\n', 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok']));
  const res = await get('hints');
  assert.equal(res.status, 200);
  assert.equal(res.text, 'ok');
  assert.equal(res.headers.link, undefined);
});

test('malformed answers give 502, and the gateway keeps serving', { timeout: 15_000 }, async () => {
  scripts.set('garbage', (socket) => socket.write('SSH-2.0-OpenSSH_9.2\r\n\r\n'));
  scripts.set('huge-head', (socket) => socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(70 * 1024)}\r\n\r\n`));
  scripts.set('two-lengths', (socket) => socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nabc'));
  scripts.set('bad-field', (socket) => socket.write('HTTP/1.1 200 OK\r\nno colon here\r\ncontent-length: 0\r\n\r\n'));
  let badChunkClosed!: () => void;
  const closed = new Promise<void>((r) => (badChunkClosed = r));
  scripts.set('bad-chunk', (socket) => {
    socket.on('close', badChunkClosed);
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n');
  });
  // Lines ending in bare LFs: refused at once, not after the silence timeout (a 504).
  scripts.set('bare-lf', (socket) => socket.write('HTTP/1.1 200 OK\ncontent-length: 2\n\nok'));
  // gzip-coded bytes would reach the client with nothing saying so.
  scripts.set('gzip-coded', (socket) => socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n'));
  for (const name of ['garbage', 'huge-head', 'two-lengths', 'bad-field', 'bare-lf', 'gzip-coded']) assert.equal((await get(name)).status, 502, name);
  // The head was fine and has gone to the client: the response is cut off, and the backend connection closed.
  await assert.rejects(get('bad-chunk'));
  await closed;
  // Its analytics line keeps the status the client was sent.
  const line = await gw.waitForLine((l) => l.path === '/v2/org/app/blobs/sha256:bad-chunk');
  assert.equal(line.status, 200);
  assert.equal(line.outcome, 'proxy');
  scripts.set('fine', (socket) => socket.write(answer('fine')));
  assert.equal((await get('fine')).text, 'fine');
});

test('a malformed body of a redirect followed inside the gateway is dropped with its connection', async () => {
  scripts.set('moved-bad', (socket) => socket.write('HTTP/1.1 307 Temporary Redirect\r\nlocation: /v2/org/app/blobs/moved-here\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n'));
  scripts.set('moved-here', (socket) => socket.write(answer('here')));
  const res = await get('moved-bad');
  assert.equal(res.status, 200);
  assert.equal(res.text, 'here');
  scripts.set('still-up', (socket) => socket.write(answer('up')));
  assert.equal((await get('still-up')).text, 'up');
});

test('random framings, chunk sizes and read boundaries: every body arrives as sent, over one kept connection', async () => {
  const random = seededRandom(0x5eed);
  const rand = (n: number): number => Math.floor(random() * n);
  const used = new Set<number>();
  for (let round = 0; round < 20; round++) {
    const body = randomBytes(rand(300_000));
    let wire: Buffer;
    if (round % 2 === 0) wire = Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n`), body]);
    else {
      const parts: Buffer[] = [Buffer.from('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n')];
      for (let at = 0; at < body.length; ) {
        const size = Math.min(body.length - at, 1 + rand(70_000));
        parts.push(Buffer.from(`${size.toString(16)}${rand(2) === 0 ? ';x=1' : ''}\r\n`), body.subarray(at, at + size), Buffer.from('\r\n'));
        at += size;
      }
      parts.push(Buffer.from('0\r\n\r\n'));
      wire = Buffer.concat(parts);
    }
    // Cut the bytes anywhere, into a few writes the gateway reads apart.
    const cuts = [0, ...Array.from({ length: 4 }, () => rand(wire.length)).sort((a, b) => a - b), wire.length];
    scripts.set(`random-${round}`, (socket, connection) => {
      used.add(connection);
      trickle(socket, cuts.slice(1).map((end, i) => wire.subarray(cuts[i], end)), 5);
    });
    const res = await get(`random-${round}`);
    assert.equal(res.status, 200, `round ${round}`);
    assert.ok(res.body.equals(body), `round ${round}: ${res.body.length} bytes against ${body.length}`);
  }
  assert.equal(used.size, 1, 'every answer left the connection fit for the next request');
});

/** Backend failures counted with `code`: 0 before the first. */
const upstreamErrors = async (port: number, code: string) => (await metricValue(port, `gateway_upstream_errors_total{code="${code}"}`)) || 0;

test('a backend that stops midway cuts the client response off, and the failure is counted and logged', async () => {
  scripts.set('cut', (socket) => trickle(socket, ['HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n', Buffer.alloc(1000, 1)], 15, () => socket.destroy()));
  const before = await upstreamErrors(gw.adminPort, 'UPSTREAM_UNREACHABLE');
  const got = await new Promise<{ bytes: number; complete: boolean }>((resolve) => {
    httpRequest({ host: '127.0.0.1', port: gw.port, path: '/v2/org/app/blobs/sha256:cut', headers: { host: D }, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('error', () => undefined);
      res.on('close', () => resolve({ bytes, complete: res.complete }));
    }).end();
  });
  assert.equal(got.complete, false);
  assert.equal(got.bytes, 1000);
  // Clients retry such a download quietly; the operator sees the backend's failure.
  assert.equal(await upstreamErrors(gw.adminPort, 'UPSTREAM_UNREACHABLE'), before + 1);
  const logged = await gw.waitForLog((l) => l.msg === 'upstream failed' && l.reason === 'the body broke off: the backend closed the connection');
  assert.equal(logged.backend, `http://127.0.0.1:${(backend.address() as AddressInfo).port}`);
});

test('a pipelined request whose backend breaks off while the answer before it is still on its way: that answer arrives whole, then the connection closes', { timeout: 15_000 }, async () => {
  // node 24's destroy() of a response still queued behind another (no
  // socket yet) only marks it: the connection stayed open, and the client
  // waited for the second answer for good.
  scripts.set('first-slow', (socket) => setTimeout(() => socket.write(answer('hello')), 300));
  scripts.set('dies-after-head', (socket) => {
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
    socket.destroy();
  });
  const started = Date.now();
  // Fails ("raw request timed out") when the connection stays open 5 s without a byte.
  const got = await rawRequest(gw.port, ['first-slow', 'dies-after-head'].map((name) => `GET /v2/org/app/blobs/sha256:${name} HTTP/1.1\r\nhost: ${D}\r\n\r\n`).join(''));
  assert.ok(Date.now() - started >= 300);
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nhello$/);
});

/** Writes the head and `blob` in pieces of odd sizes, so that reads end anywhere, with backpressure. */
function sendRandom(socket: Socket, blob: Buffer): void {
  socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${blob.length}\r\n\r\n`);
  let at = 0;
  const pump = (): void => {
    while (at < blob.length) {
      const next = Math.min(blob.length, at + 100_003);
      const more = socket.write(blob.subarray(at, next));
      at = next;
      if (!more) return void socket.once('drain', pump);
    }
  };
  pump();
}

/** Downloads through `port`, stopping every 2 MiB (once for 900 ms, longer than --upstream-timeout); the SHA-256 of what arrived. */
function slowDigest(port: number, path: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    httpRequest({ host: '127.0.0.1', port, path, headers: { host: D }, agent: false }, (res) => {
      const hash = createHash('sha256');
      let got = 0;
      let stops = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        const before = got;
        got += c.length;
        if (Math.floor(before / 2097152) !== Math.floor(got / 2097152)) {
          res.pause();
          setTimeout(() => res.resume(), stops++ === 3 ? 900 : 20);
        }
      });
      res.on('end', () => resolve(hash.digest('hex')));
      res.on('error', reject);
    }).end();
  });
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('a blob arrives byte for byte through a client slower than the backend, even one that stops longer than the silence timeout', async () => {
  const blob = randomBytes(24 * 1024 * 1024);
  scripts.set('random', (socket) => sendRandom(socket, blob));
  assert.equal(await slowDigest(gw.port, '/v2/org/app/blobs/sha256:random'), sha256(blob));
});

test('a client that stops reading is cut off after --send-timeout (2 s here), and the backend connection is closed', { timeout: 30_000 }, async () => {
  let backendClosed!: () => void;
  const closed = new Promise<void>((r) => (backendClosed = r));
  scripts.set('endless-stopped', (socket) => {
    socket.on('close', () => backendClosed());
    socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
    const chunk = `10000\r\n${'x'.repeat(0x10000)}\r\n`;
    const pump = (): void => {
      while (socket.writable && socket.write(chunk));
      if (socket.writable) socket.once('drain', pump);
    };
    pump();
  });
  const timeoutsBefore = await metricValue(gw.adminPort, 'gateway_send_timeouts_total');
  const failuresBefore = await upstreamErrors(gw.adminPort, 'UPSTREAM_UNREACHABLE');
  const started = Date.now();
  const client = connect(gw.port, '127.0.0.1');
  client.on('error', () => undefined);
  const clientClosed = new Promise<void>((r) => client.on('close', () => r()));
  client.write(`GET /v2/org/app/blobs/sha256:endless-stopped HTTP/1.1\r\nhost: ${D}\r\n\r\n`);
  // Never reads: the kernel's buffers fill, then the gateway's write waits.
  client.pause();
  await closed;
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 2000 && elapsed < 10_000, `the backend connection closed after ${elapsed} ms`);
  // The client's connection is closed too: reading again, it sees the end.
  client.resume();
  await clientClosed;
  const line = await gw.waitForLine((l) => l.path === '/v2/org/app/blobs/sha256:endless-stopped');
  assert.equal(line.status, 200);
  assert.equal(line.outcome, 'proxy');
  assert.equal(await metricValue(gw.adminPort, 'gateway_send_timeouts_total'), timeoutsBefore + 1);
  // The client's doing, not the backend's.
  assert.equal(await upstreamErrors(gw.adminPort, 'UPSTREAM_UNREACHABLE'), failuresBefore);
});

test('clients that stop reading: read buffers stay within --proxy-buffer-memory (16 KiB each past it), every body still arrives whole, and closed connections give their buffers back', { timeout: 60_000 }, async () => {
  // Larger than what the kernel's socket buffers take in on loopback, so that the gateway's writes wait.
  const blob = randomBytes(16 * 1024 * 1024);
  scripts.set('budget', (socket) => sendRandom(socket, blob));
  const budgetGw = await startGateway({
    manifest: { rules: [{ type: 'docker-v1', domain: D, 'package-id': 'app', 'repository-name': 'org/app', registry: 'backend.test', 'always-proxy': true }] },
    args: ['--upstream', `backend.test=http://127.0.0.1:${(backend.address() as AddressInfo).port}`, '--proxy-buffer-memory', '1'],
  });
  const held = async () => Number(/^gateway_proxy_read_buffer_bytes (\d+)$/m.exec((await request(budgetGw.adminPort, { path: '/metrics' })).text)?.[1]);
  const settled = async (done: (bytes: number) => boolean) => {
    const until = Date.now() + 20_000;
    let last = await held();
    while (!done(last) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      last = await held();
    }
    return last;
  };
  try {
    const CLIENTS = 24;
    // Each client takes the head, then stops reading.
    const responses = await Promise.all(
      Array.from({ length: CLIENTS }, () =>
        new Promise<IncomingMessage>((resolve, reject) => {
          httpRequest({ host: '127.0.0.1', port: budgetGw.port, path: '/v2/org/app/blobs/sha256:budget', headers: { host: D }, agent: false }, (res) => {
            res.pause();
            resolve(res);
          }).on('error', reject).end();
        }),
      ),
    );
    // A connection carrying a body holds two buffers (node asks for the next one while a read's bytes go out).
    // With 256 KiB each, 24 stopped clients would hold 12 MiB; here at most 1 MiB of large ones.
    await new Promise((r) => setTimeout(r, 500));
    const stopped = await held();
    assert.ok(stopped >= 1024 * 1024 && stopped <= 1024 * 1024 + 2 * CLIENTS * 16 * 1024, `${stopped} bytes held`);
    // Half of them read on: whole bodies, through large and small buffers alike. The others leave.
    const digests = await Promise.all(
      responses.map((res, i) => {
        if (i % 2 === 1) {
          res.destroy();
          return null;
        }
        const hash = createHash('sha256');
        res.on('data', (c: Buffer) => hash.update(c));
        res.resume();
        return new Promise<string>((resolve, reject) => res.on('end', () => resolve(hash.digest('hex'))).on('error', reject));
      }),
    );
    for (const d of digests) if (d !== null) assert.equal(d, sha256(blob));
    // The connections of the finished bodies are parked, each with its buffers, until they idle out (4 s); then nothing is held.
    assert.equal(await settled((bytes) => bytes === 0), 0);
  } finally {
    await budgetGw.stop();
  }
});

test('clients that leave while a body streams at full speed: no download after them stalls, and every read buffer goes back to the budget', { timeout: 60_000 }, async () => {
  // node:http drops the callback of a write made after the client's socket
  // is destroyed and before its 'close' event (the next turn of the event
  // loop), and the proxy's batched writes landed in that gap. The buffers
  // those writes held were never given back, 256 KiB each: after a few
  // hundred downloads left midway (a pull stopped with Ctrl-C), every read
  // was a small one, and the metric counted memory nobody held. And when
  // the backend's body had just ended, its connection went back to the
  // pool still waiting for that write: the next download on it stopped
  // after its first read, for good (no silence timeout runs while a write
  // is awaited).
  const blob = randomBytes(1024 * 1024);
  scripts.set('leaving', (socket) => sendRandom(socket, blob));
  const leavingGw = await startGateway({
    manifest: { rules: [{ type: 'docker-v1', domain: D, 'package-id': 'app', 'repository-name': 'org/app', registry: 'backend.test', 'always-proxy': true }] },
    args: ['--upstream', `backend.test=http://127.0.0.1:${(backend.address() as AddressInfo).port}`],
  });
  try {
    const leaveAfter = seededRandom(7);
    /** How each download ended: 'left' where it meant to, or what else happened. */
    const ends: string[] = [];
    const download = () =>
      new Promise<void>((resolve) => {
        const stopAt = (0.1 + 0.8 * leaveAfter()) * blob.length;
        let got = 0;
        let lastData = Date.now();
        const end = (how: string) => {
          clearInterval(watch);
          req.destroy();
          ends.push(how);
          resolve();
        };
        const watch = setInterval(() => Date.now() - lastData > 3000 && end(`stalled after ${got} bytes`), 500);
        const req = httpRequest({ host: '127.0.0.1', port: leavingGw.port, path: '/v2/org/app/blobs/sha256:leaving', headers: { host: D }, agent: false }, (res) => {
          res.on('data', (c: Buffer) => {
            got += c.length;
            lastData = Date.now();
            if (got > stopAt && !req.destroyed) end('left');
          });
          res.on('close', () => req.destroyed || end(`${res.statusCode}, closed after ${got} bytes`));
        });
        req.on('error', (e) => req.destroyed || end(e.message));
        req.end();
      });
    // 4 at a time, 160 in all.
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 40; i++) await download();
    }));
    assert.deepEqual(ends.filter((how) => how !== 'left'), []);
    // The backend connections they used are closed (the clients left), or parked and idle out after 4 s.
    const until = Date.now() + 15_000;
    let held = await metricValue(leavingGw.adminPort, 'gateway_proxy_read_buffer_bytes');
    while (held !== 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      held = await metricValue(leavingGw.adminPort, 'gateway_proxy_read_buffer_bytes');
    }
    assert.equal(held, 0, `${held} bytes of read buffers still counted`);
    // The clients left: no failure of the backend's.
    assert.equal(await upstreamErrors(leavingGw.adminPort, 'UPSTREAM_UNREACHABLE'), 0);
  } finally {
    await leavingGw.stop();
  }
});

test('random backends and random clients: every answer ends in bounds, whole ones byte for byte, and every read buffer goes back', { timeout: 60_000 }, () =>
  randomClients(gw, 21),
);

test('random backends over TLS and random clients: the same', { timeout: 60_000 }, async () => {
  const ca = makeCerts(join(tempDir('gw-tls-'), 'certs'));
  const backendTls = createTlsServer({ key: readFileSync(ca.key), cert: readFileSync(ca.cert) }, serveScripts);
  await withTlsBackend(ca, backendTls, (tlsGw) => randomClients(tlsGw, 22), ['--send-timeout', '2000']);
});

/**
 * 100 clients through `target` (a backend's silence cut off after 500 ms,
 * a client that takes nothing after 2 s), 4 at a time, drawn from `seed`.
 */
async function randomClients(target: GatewayProcess, seed: number): Promise<void> {
  // Backends: framing by length, chunked or close; written in random pieces,
  // some with pauses; some break off (close or fall silent) midway, some
  // answer 304. Clients: read it all, leave at a random point, stop reading
  // once for up to 1.5 s, close their sending side, or pipeline two
  // requests. Each bug this found would hang a client (a stalled body, a
  // pipelined connection left open), leak the read budget, or (over TLS)
  // end a body read until close short.
  const random = seededRandom(seed);
  const pick = <T>(options: readonly T[]): T => options[Math.floor(random() * options.length)];
  const sizes = [0, 1, 1000, 70_000, 300_000, 1_500_000];
  const blobs = sizes.map((n) => randomBytes(n));
  let ids = 0;
  /** Registers a backend answer for a new name; what a whole download of it is, or null when it cannot be whole. */
  const plan = (method: string): { name: string; whole: Buffer | null } => {
    const name = `fuzz-${++ids}`;
    const blob = pick(blobs);
    const framing = pick(['length', 'chunked', 'close'] as const);
    const breaks = random() < 0.15 ? pick(['close', 'silence'] as const) : null;
    const notModified = random() < 0.05;
    const pauses = random() < 0.3;
    const cut = breaks === null ? blob.length : Math.floor(random() * blob.length);
    const pieceSizes = Array.from({ length: 64 }, () => 1 + Math.floor(random() * 120_000));
    scripts.set(name, (socket) => {
      if (notModified) return void socket.write('HTTP/1.1 304 Not Modified\r\netag: "x"\r\n\r\n');
      const field = framing === 'length' ? `content-length: ${blob.length}` : framing === 'chunked' ? 'transfer-encoding: chunked' : 'connection: close';
      socket.write(`HTTP/1.1 200 OK\r\n${field}\r\n\r\n`);
      if (method === 'HEAD') return void (framing === 'close' && socket.end());
      let at = 0;
      let n = 0;
      const pump = (): void => {
        while (at < cut) {
          const next = Math.min(cut, at + pieceSizes[n % pieceSizes.length]);
          const piece = blob.subarray(at, next);
          const more = socket.write(framing === 'chunked' ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')]) : piece);
          at = next;
          if (pauses && ++n % 3 === 0) return void setTimeout(pump, 5);
          if (!more) return void socket.once('drain', pump);
        }
        if (breaks === 'close') return void socket.destroy();
        // Silence: --upstream-timeout (500 ms) cuts it off.
        if (breaks === 'silence') return;
        if (framing === 'chunked') socket.write('0\r\n\r\n');
        if (framing === 'close') socket.end();
      };
      pump();
    });
    return { name, whole: breaks === null && !notModified && method === 'GET' ? blob : null };
  };
  const problems: string[] = [];
  const client = (k: number) =>
    new Promise<void>((resolve) => {
      const behaviour = pick(['read', 'read', 'leave', 'pause', 'half-close', 'pipeline'] as const);
      const requests = Array.from({ length: behaviour === 'pipeline' ? 2 : 1 }, () => {
        const method = random() < 0.1 ? 'HEAD' : 'GET';
        return { method, ...plan(method) };
      });
      const leaveAt = random() * 1_000_000;
      const chunks: Buffer[] = [];
      let got = 0;
      let lastData = Date.now();
      let paused = false;
      const socket = connect(target.port, '127.0.0.1');
      const watch = setInterval(() => {
        // Nothing may sit still longer than the timeouts allow (500 ms of silence, 2 s of send time, 1.5 s of pause).
        if (Date.now() - lastData > 6000) {
          problems.push(`client ${k} (${behaviour}) stalled after ${got} bytes`);
          socket.destroy();
        }
      }, 500);
      socket.on('error', () => undefined);
      socket.on('connect', () => {
        socket.write(requests.map((r, i) => `${r.method} /v2/org/app/blobs/sha256:${r.name} HTTP/1.1\r\nhost: ${D}\r\n${i === requests.length - 1 ? 'connection: close\r\n' : ''}\r\n`).join(''));
        if (behaviour === 'half-close') socket.end();
      });
      socket.on('data', (c: Buffer) => {
        got += c.length;
        lastData = Date.now();
        chunks.push(c);
        if (behaviour === 'leave' && got > leaveAt) socket.destroy();
        if (behaviour === 'pause' && got > leaveAt && !paused) {
          paused = true;
          socket.pause();
          setTimeout(() => {
            lastData = Date.now();
            socket.resume();
          }, random() * 1500);
        }
      });
      socket.on('close', () => {
        clearInterval(watch);
        const whole = requests[0].whole;
        if ((behaviour === 'read' || behaviour === 'pause') && whole !== null) {
          const all = Buffer.concat(chunks);
          const headEnd = all.indexOf('\r\n\r\n');
          const chunked = /\r\ntransfer-encoding: chunked\r\n/i.test(all.subarray(0, headEnd + 2).toString('latin1'));
          const body = chunked ? dechunk(all.subarray(headEnd + 4)) : all.subarray(headEnd + 4);
          if (!body.equals(whole)) problems.push(`client ${k}: ${body.length} bytes where ${whole.length} were sent`);
        }
        resolve();
      });
    });
  let next = 0;
  await Promise.all(Array.from({ length: 4 }, async () => {
    while (next < 100) await client(next++);
  }));
  assert.deepEqual(problems, []);
  const until = Date.now() + 15_000;
  let held = await metricValue(target.adminPort, 'gateway_proxy_read_buffer_bytes');
  while (held !== 0 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 200));
    held = await metricValue(target.adminPort, 'gateway_proxy_read_buffer_bytes');
  }
  assert.equal(held, 0);
  assert.deepEqual(target.logs.filter((l) => (l.level as number) >= 50), []);
}

/** The payload of a chunked body (no extensions, no trailers). */
function dechunk(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const lineEnd = bytes.indexOf('\r\n', at);
    const size = parseInt(bytes.subarray(at, lineEnd).toString('latin1'), 16);
    if (!(size > 0)) break;
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/** A gateway whose backend is `backend` (listening on 127.0.0.1) over TLS, trusting `ca`; both are closed after `fn`. */
async function withTlsBackend(ca: TestCa, backend: Server, fn: (tlsGw: GatewayProcess) => Promise<void>, args: string[] = []): Promise<void> {
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const tlsGw = await startGateway({
    manifest: { rules: [{ type: 'docker-v1', domain: D, 'package-id': 'app', 'repository-name': 'org/app', registry: 'tls.test', 'always-proxy': true }] },
    args: ['--upstream', `tls.test=https://127.0.0.1:${(backend.address() as AddressInfo).port}`, '--upstream-timeout', '500', ...args],
    env: { NODE_EXTRA_CA_CERTS: ca.caCert },
  });
  try {
    await fn(tlsGw);
  } finally {
    await tlsGw.stop();
    backend.close();
  }
}

test('over TLS too, where node decodes records into the read buffer after reading stopped', async () => {
  const ca = makeCerts(join(tempDir('gw-tls-'), 'certs'));
  const blob = randomBytes(24 * 1024 * 1024);
  const backendTls = createTlsServer({ key: readFileSync(ca.key), cert: readFileSync(ca.cert) }, (socket) => {
    // One request per read: a GET head is small.
    socket.on('data', () => sendRandom(socket, blob));
    socket.on('error', () => undefined);
  });
  await withTlsBackend(ca, backendTls, async (tlsGw) => {
    for (let round = 0; round < 2; round++) assert.equal(await slowDigest(tlsGw.port, '/v2/org/app/blobs/sha256:random'), sha256(blob), `round ${round}`);
  });
  // With no read budget every buffer holds 16 KiB: one TLS record each.
  await withTlsBackend(ca, backendTls, async (tlsGw) => assert.equal(await slowDigest(tlsGw.port, '/v2/org/app/blobs/sha256:random'), sha256(blob), 'small buffers'), ['--proxy-buffer-memory', '0']);
});

test('over TLS, a body read until the backend closes arrives whole, though the close comes with reads not yet written', { timeout: 60_000 }, async () => {
  // TLS delivers the close (close_notify, then FIN) in the same turn of the
  // event loop as the last records, before the batch of their reads is
  // written: the client's answer ended there, cleanly (a chunked answer
  // whose last chunk came early), short by up to 256 KiB, or empty.
  const ca = makeCerts(join(tempDir('gw-tls-'), 'certs'));
  const blobs = [1, 70_000, 300_000, 1_500_000].map((n) => randomBytes(n));
  let served = 0;
  const backendTls = createTlsServer({ key: readFileSync(ca.key), cert: readFileSync(ca.cert) }, (socket) => {
    socket.once('data', () => {
      const blob = blobs[served++ % blobs.length];
      socket.write('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n');
      socket.end(blob);
    });
    socket.on('error', () => undefined);
  });
  await withTlsBackend(ca, backendTls, async (tlsGw) => {
    const wrong: string[] = [];
    for (let i = 0; i < 40; i++) {
      const res = await request(tlsGw.port, { path: '/v2/org/app/blobs/sha256:closing', host: D }).catch((e: Error) => ({ status: 0, body: Buffer.from(e.message) }));
      const blob = blobs[i % blobs.length];
      if (res.status !== 200 || !res.body.equals(blob)) wrong.push(`${i}: ${res.status}, ${res.body.length} of ${blob.length} bytes`);
    }
    assert.deepEqual(wrong, []);
  });
});

test('a TLS record that cannot be decrypted, sent in the same TCP write as the head: the client response is cut off at once', { timeout: 15_000 }, async () => {
  const ca = makeCerts(join(tempDir('gw-tls-'), 'certs'));
  // The TLS layer runs over a stream of our own, so that its records can be
  // sent in one TCP write with bytes that are no TLS record. (node reports
  // the decryption error only once the gateway reads again, that is after
  // the proxy took the body: the break of a connection whose body is still
  // held, backend-connection.ts's 'held' case, is not reached this way.)
  const backend = createServer((raw) => {
    let held: Buffer[] | null = null;
    const duplex = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        if (held === null) raw.write(chunk);
        else held.push(chunk);
        done();
      },
    });
    raw.on('data', (d) => duplex.push(d));
    raw.on('error', () => undefined);
    const tlsSocket = new TLSSocket(duplex, { isServer: true, key: readFileSync(ca.key), cert: readFileSync(ca.cert) });
    tlsSocket.on('error', () => undefined);
    tlsSocket.once('data', () => {
      held = [];
      tlsSocket.write('HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\npart', () => {
        raw.write(Buffer.concat([...held!, Buffer.from('\x17\x03\x03\x00\x05junk!', 'latin1')]));
        held = null;
      });
    });
  });
  await withTlsBackend(ca, backend, async (tlsGw) => {
    const started = Date.now();
    await assert.rejects(request(tlsGw.port, { path: '/v2/org/app/blobs/sha256:broken', host: D }));
    // At once, not after the client's or the silence timeout.
    assert.ok(Date.now() - started < 2000, `${Date.now() - started} ms`);
  });
});

test('a client that leaves while the connection to the backend is still opening (TLS handshake unanswered): the socket is closed at once, the line says 499', { timeout: 30_000 }, async () => {
  const ca = makeCerts(join(tempDir('gw-tls-'), 'certs'));
  let backendClosed!: () => void;
  const closed = new Promise<void>((r) => (backendClosed = r));
  // Takes the TCP connection and never answers the ClientHello: the gateway's
  // connection stays opening until --upstream-connect-timeout (10 s here).
  const mute = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.on('close', backendClosed);
    // Reading, so that the gateway's closing is seen.
    socket.resume();
  });
  await withTlsBackend(ca, mute, async (tlsGw) => {
    const req = httpRequest({ host: '127.0.0.1', port: tlsGw.port, path: '/v2/org/app/blobs/sha256:never', headers: { host: D }, agent: false });
    req.on('error', () => undefined);
    req.end();
    await new Promise((r) => setTimeout(r, 300));
    const left = Date.now();
    req.destroy();
    // Bounded, so that the gateway is stopped whatever happens.
    const timedOut = new Promise<void>((r) => setTimeout(r, 12_000).unref());
    await Promise.race([closed, timedOut]);
    assert.ok(Date.now() - left < 3000, `the backend socket closed ${Date.now() - left} ms after the client left`);
    const line = await tlsGw.waitForLine((l) => l.path === '/v2/org/app/blobs/sha256:never');
    assert.equal(line.status, 499);
    assert.equal(line.outcome, 'proxy');
  });
});

test('a head that has no body but is followed by bytes: the connection is not used again', async () => {
  const used: number[] = [];
  scripts.set('head-and-junk', (socket, connection) => {
    used.push(connection);
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello');
  });
  scripts.set('after-junk', (socket, connection) => {
    used.push(connection);
    socket.write(answer('clean'));
  });
  const head = await get('head-and-junk', 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], '5');
  assert.equal((await get('after-junk')).text, 'clean');
  assert.notEqual(used[1], used[0]);
});

test('request field values reach the backend byte for byte, obs-text included', async () => {
  let seen = '';
  scripts.set('bytes', (socket, _c, _n, head) => {
    seen = head;
    socket.write(answer('ok'));
  });
  const raw = await rawRequest(gw.port, `GET /v2/org/app/blobs/sha256:bytes HTTP/1.1\r\nhost: ${D}\r\nx-name: caf\xe9 \xff\r\nconnection: close\r\n\r\n`);
  assert.match(raw, /^HTTP\/1\.1 200/);
  // rawRequest sends the text as UTF-8: é and ÿ are two bytes each, which the backend reads back as latin1.
  assert.match(seen, /\r\nx-name: caf\xc3\xa9 \xc3\xbf\r\n/);
});

/**
 * A backend that answers `name` only after 300 ms, then without end; `leave`
 * makes the client go before that. The backend connection must be closed
 * before the head (not held until it, nor read to the end), and the line
 * must say 499.
 */
async function clientLeavesBeforeHead(name: string, leave: () => void): Promise<void> {
  let backendClosed!: (headSent: boolean) => void;
  const closed = new Promise<boolean>((r) => (backendClosed = r));
  scripts.set(name, (socket) => {
    let headSent = false;
    socket.on('close', () => backendClosed(headSent));
    setTimeout(() => {
      if (socket.destroyed) return;
      headSent = true;
      socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n');
      const chunk = `10000\r\n${'x'.repeat(0x10000)}\r\n`;
      const timer = setInterval(() => socket.writable && socket.write(chunk), 5);
      socket.on('close', () => clearInterval(timer));
    }, 300);
  });
  leave();
  // Given up when the client left, not held until the backend's head.
  assert.equal(await closed, false);
  // Nothing was sent: the line says so with nginx's 499 (client closed request), not as a backend failure.
  const line = await gw.waitForLine((l) => l.path === `/v2/org/app/blobs/sha256:${name}`);
  assert.equal(line.status, 499);
  assert.equal(line.outcome, 'proxy');
}

test('a client that leaves before the head arrives: the backend connection is closed at once, not read to the end', { timeout: 15_000 }, () =>
  clientLeavesBeforeHead('late-endless', () => {
    const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/v2/org/app/blobs/sha256:late-endless', headers: { host: D }, agent: false });
    req.on('error', () => undefined);
    req.end();
    setTimeout(() => req.destroy(), 100);
  }),
);

test("a client that half-closes after its request counts as gone (node:http's default), as README says", { timeout: 15_000 }, () =>
  clientLeavesBeforeHead('late-half-closed', () => {
    const socket = connect(gw.port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.end(`GET /v2/org/app/blobs/sha256:late-half-closed HTTP/1.1\r\nhost: ${D}\r\n\r\n`);
  }),
);
