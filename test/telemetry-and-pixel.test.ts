// SPEC §7 telemetry-v1 and §8 pixel-v1.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { brotliCompressSync, deflateSync, gzipSync, zstdCompressSync } from 'node:zlib';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';

const D = 'tel.test';
const hashed = 'sha256:' + createHash('sha256').update('hashed-secret').digest('hex');
let gw: GatewayProcess;
before(async () => {
  gw = await startGateway({
    manifest: {
      rules: [
        { type: 'telemetry-v1', domain: D, 'package-id': 'open', 'incoming-path': '/open' },
        { type: 'telemetry-v1', domain: D, 'package-id': 'closed', 'incoming-path': '/closed', 'access-tokens': [] },
        { type: 'telemetry-v1', domain: D, 'package-id': 'tok', 'incoming-path': '/tok', 'access-tokens': ['plain-secret', hashed] },
        { type: 'pixel-v1', domain: D, 'package-id': 'px' },
        { type: 'pixel-v1', domain: D, 'package-id': 'px2', path: '/p/b.png' },
      ],
    },
    args: ['--max-body-events', '2'],
  });
});
after(() => gw.stop());

const post = (path: string, body: string, headers: Record<string, string> = {}) =>
  request(gw.port, { method: 'POST', path, host: D, body, headers });

test('each posted object is one capture line, answer 200 with an empty body', async () => {
  const res = await post('/open', '{"event":"install"}\n{"event":"run"}');
  assert.equal(res.status, 200);
  assert.equal(res.body.length, 0);
  const lines = await gw.linesFor(res.headers['x-request-id'] as string, 2);
  assert.deepEqual(lines.map((l) => l.capture), [
    { type: 'telemetry', package: 'open', event: { event: 'install' } },
    { type: 'telemetry', package: 'open', event: { event: 'run' } },
  ]);
});

test('--max-body-events keeps the first N events', async () => {
  const res = await post('/open', '{"n":1}{"n":2}{"n":3}');
  await gw.linesFor(res.headers['x-request-id'] as string, 2);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(gw.lines.filter((l) => l.requestId === res.headers['x-request-id']).length, 2);
});

test('an event nested deeper than 100 levels ends the reading, as text that is not JSON does; 30,000 levels (60 KB) no longer end the process', async () => {
  /** An object whose values nest `depth` objects and arrays deep, itself included. */
  const nested = (depth: number) => '{"a":' + '['.repeat(depth - 1) + ']'.repeat(depth - 1) + '}';
  const res = await post('/open', `${nested(100)}\n${nested(101)}\n{"after":1}`);
  assert.equal(res.status, 200);
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.equal(JSON.stringify(line.capture), `{"type":"telemetry","package":"open","event":${nested(100)}}`);
  const deep = await post('/open', nested(30_000));
  assert.equal(deep.status, 200);
  await gw.linesFor(deep.headers['x-request-id'] as string);
  assert.equal((await post('/open', '{"still":"serving"}')).status, 200);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(gw.lines.filter((l) => l.requestId === res.headers['x-request-id']).length, 1);
});

test('a body in a content coding is decoded first (a byte order mark skipped); one the gateway cannot decode gets 415, a broken one 400, one that decodes past --max-body-size 413', async () => {
  const events = Buffer.from('{"n":1}\n{"n":2}');
  const posted = (body: Buffer, encoding: string) =>
    request(gw.port, { method: 'POST', path: '/open', host: D, body, headers: { 'content-encoding': encoding } });
  for (const [encoding, body] of [
    ['gzip', gzipSync(events)], ['X-GZIP', gzipSync(events)], ['deflate', deflateSync(events)], ['br', brotliCompressSync(events)],
    ['zstd', zstdCompressSync(events)], ['identity', events], ['deflate, identity, gzip', gzipSync(deflateSync(events))],
    // A UTF-8 byte order mark before the JSON is skipped (RFC 8259 §8.1).
    ['identity', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), events])],
  ] as const) {
    const res = await posted(body, encoding);
    assert.equal(res.status, 200, encoding);
    const lines = await gw.linesFor(res.headers['x-request-id'] as string, 2);
    assert.deepEqual(lines.map((l) => l.capture?.event), [{ n: 1 }, { n: 2 }], encoding);
  }
  for (const [encoding, body, status, code] of [
    ['compress', events, 415, 'UNSUPPORTED_ENCODING'],
    ['gzip, compress', gzipSync(events), 415, 'UNSUPPORTED_ENCODING'],
    ['gzip', events, 400, 'BAD_CONTENT_CODING'],
    ['gzip', gzipSync(Buffer.alloc(65_537, ' ')), 413, 'BODY_TOO_LARGE'],
  ] as const) {
    const res = await posted(body, encoding);
    assert.equal(res.status, status, encoding);
    assert.equal(JSON.parse(res.text).error.code, code);
    if (status === 415) assert.equal(res.headers['accept-encoding'], 'gzip, deflate, br, zstd');
    const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
    assert.deepEqual([line.status, line.outcome, line.capture], [status, 'rejected', null]);
  }
});

test('a body over --max-body-size is read to its end before the 413, so that a client still sending reads the answer, not a reset connection', async () => {
  const half = Buffer.alloc(1_000_000, ' ');
  const socket = connect(gw.port, '127.0.0.1');
  await once(socket, 'connect');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  const closed = new Promise<Error | null>((resolve) => {
    socket.once('error', resolve);
    socket.once('close', () => resolve(null));
  });
  socket.write(`POST /open HTTP/1.1\r\nHost: ${D}\r\nContent-Length: ${2 * half.length}\r\n\r\n`);
  socket.write(half);
  await new Promise((r) => setTimeout(r, 300));
  // No answer yet, and the connection open: an answer now, and the close after it, would leave the rest of the body unread, which resets the connection.
  assert.equal(received, '');
  assert.equal(socket.readyState, 'open');
  socket.end(half);
  assert.equal(await closed, null);
  assert.match(received, /^HTTP\/1\.1 413 /);
  assert.match(received, /"code":"BODY_TOO_LARGE"/);
});

test('only POST to the exact path matches', async () => {
  assert.equal((await request(gw.port, { path: '/open', host: D })).status, 404);
  assert.equal((await post('/open/', '{}')).status, 404);
});

test('access-tokens [] lets nobody in', async () => {
  const res = await post('/closed', '{}', { authorization: 'Bearer anything' });
  assert.equal(res.status, 401);
  assert.equal(JSON.parse(res.text).error.code, 'UNAUTHORIZED');
});

test('tokens in plain text or as sha256:<hex>', async () => {
  assert.equal((await post('/tok', '{}')).status, 401);
  assert.equal((await post('/tok', '{}', { authorization: 'Bearer wrong' })).status, 401);
  assert.equal((await post('/tok', '{}', { authorization: 'Basic plain-secret' })).status, 401);
  assert.equal((await post('/tok', '{}', { authorization: 'Bearer plain-secret' })).status, 200);
  const ok = await post('/tok', '{"x":1}', { authorization: 'bearer hashed-secret' });
  assert.equal(ok.status, 200);
  const [line] = await gw.linesFor(ok.headers['x-request-id'] as string);
  assert.deepEqual(line.capture, { type: 'telemetry', package: 'tok', event: { x: 1 } });
  const denied = await post('/tok', '{}', { authorization: 'Bearer sha256:' + hashed.slice(7) });
  assert.equal(denied.status, 401, 'the digest itself is not a token');
  const [deniedLine] = await gw.linesFor(denied.headers['x-request-id'] as string);
  assert.equal(deniedLine.outcome, 'unauthorized');
});

test('pixel: 1x1 transparent PNG, no-cache headers, x-pxid captured', async () => {
  const res = await request(gw.port, { path: '/a.png?x-pxid=readme&y=1', host: D });
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'image/png');
  assert.equal(res.headers['cache-control'], 'no-cache, no-store, must-revalidate');
  assert.deepEqual([...res.body.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(res.body.readUInt32BE(16), 1, 'width');
  assert.equal(res.body.readUInt32BE(20), 1, 'height');
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.deepEqual(line.capture, { type: 'pixel', package: 'px', pixel: 'readme' });
});

test('pixel: empty x-pxid when absent, custom path', async () => {
  const res = await request(gw.port, { path: '/p/b.png', host: D });
  assert.equal(res.status, 200);
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.deepEqual(line.capture, { type: 'pixel', package: 'px2', pixel: '' });
});

test('pixel pixels are transparent', async () => {
  const { inflateSync } = await import('node:zlib');
  const res = await request(gw.port, { path: '/a.png', host: D });
  const idatLength = res.body.readUInt32BE(33);
  assert.equal(res.body.subarray(37, 41).toString('latin1'), 'IDAT');
  const raw = inflateSync(res.body.subarray(41, 41 + idatLength));
  assert.deepEqual([...raw], [0, 0, 0, 0, 0], 'filter byte, then RGBA all zero');
});
