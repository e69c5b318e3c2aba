// SPEC §2 (request host, trusted proxies) and §9 (client address).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.ts';
import { jsonBodyOf, rawRequest, request, statusOf } from './helpers/http-client.ts';

const manifest = {
  rules: [
    { type: 'file-v1', domain: 'Dl.Example.com', 'package-id': 'a', 'incoming-path': '/f', 'outgoing-url': 'https://a.example/f' },
    { type: 'file-v1', domain: 'other.example.com', 'package-id': 'b', 'incoming-path': '/f', 'outgoing-url': 'https://b.example/f' },
  ],
};

let loopbackTrusted: GatewayProcess;
let noneTrusted: GatewayProcess;
let anonymized: GatewayProcess;
before(async () => {
  [loopbackTrusted, noneTrusted, anonymized] = await Promise.all([
    startGateway({ manifest }),
    startGateway({ manifest, args: ['--trust-proxy', 'none'] }),
    startGateway({ manifest, args: ['--anonymize-ip', '--trust-proxy', 'all'] }),
  ]);
});
after(() => Promise.all([loopbackTrusted.stop(), noneTrusted.stop(), anonymized.stop()]));

test('Host is lower-cased, port and trailing dot removed', async () => {
  for (const host of ['dl.example.com', 'DL.EXAMPLE.COM:8080', 'dl.example.com.', 'dl.example.com.:443']) {
    const res = await request(loopbackTrusted.port, { path: '/f', host });
    assert.equal(res.headers.location, 'https://a.example/f', host);
  }
});

test('rules for other hosts never match', async () => {
  const res = await request(loopbackTrusted.port, { path: '/f', host: 'unknown.example.com' });
  assert.equal(res.status, 404);
  const [line] = await loopbackTrusted.linesFor(res.headers['x-request-id'] as string);
  assert.equal(line.capture, null);
  assert.equal(line.outcome, 'not-found');
  assert.equal(line.host, 'unknown.example.com');
});

test('X-Forwarded-Host from a trusted peer (loopback by default) wins, first value', async () => {
  const res = await request(loopbackTrusted.port, {
    path: '/f', host: 'dl.example.com', headers: { 'x-forwarded-host': 'Other.Example.com:443, dl.example.com' },
  });
  assert.equal(res.headers.location, 'https://b.example/f');
});

test('X-Forwarded-* from an untrusted peer is ignored', async () => {
  const res = await request(noneTrusted.port, {
    path: '/f', host: 'dl.example.com', headers: { 'x-forwarded-host': 'other.example.com', 'x-forwarded-for': '198.51.100.1' },
  });
  assert.equal(res.headers.location, 'https://a.example/f');
  const [line] = await noneTrusted.linesFor(res.headers['x-request-id'] as string);
  assert.equal(line.client.ip, '127.0.0.1');
});

test('a request target in absolute form is accepted, and its host replaces Host (RFC 9112 §3.2.2); a trusted X-Forwarded-Host still wins', async () => {
  const get = async (gw: GatewayProcess, target: string, host: string, extra = '') => {
    const raw = await rawRequest(gw.port, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}Connection: close\r\n\r\n`);
    const id = /^x-request-id: (\S+)$/im.exec(raw)?.[1] ?? '';
    return { status: statusOf(raw), location: /^location: (\S+)$/im.exec(raw)?.[1], line: (await gw.linesFor(id))[0] };
  };
  const absolute = await get(noneTrusted, 'http://DL.example.com:8080/f?x=1', 'other.example.com');
  assert.equal(absolute.status, 307);
  assert.equal(absolute.location, 'https://a.example/f?x=1');
  assert.equal(absolute.line.host, 'dl.example.com');
  assert.equal(absolute.line.path, '/f');
  assert.equal(absolute.line.query, 'x=1');
  assert.equal((await get(noneTrusted, 'https://user@other.example.com/f', 'dl.example.com')).location, 'https://b.example/f');
  // No path is the path `/`.
  const bare = await get(noneTrusted, 'http://dl.example.com', 'dl.example.com');
  assert.equal(bare.status, 404);
  assert.equal(bare.line.path, '/');
  const forwarded = await get(loopbackTrusted, 'http://dl.example.com/f', 'dl.example.com', 'X-Forwarded-Host: other.example.com\r\n');
  assert.equal(forwarded.location, 'https://b.example/f');
});

test('more than one Host field line gets 400 DUPLICATE_HOST (RFC 9112 §3.2), not the rules of the first', async () => {
  for (const second of ['Host: other.example.com', 'HOST: dl.example.com']) {
    const raw = await rawRequest(noneTrusted.port, `GET /f HTTP/1.1\r\nHost: dl.example.com\r\n${second}\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(raw), 400, second);
    assert.match(raw, /"code":"DUPLICATE_HOST"/);
    assert.doesNotMatch(raw, /^location:/im);
  }
  // Under /v2 in the registry's format, which docker prints.
  const v2 = await rawRequest(noneTrusted.port, 'GET /v2/tool/manifests/1 HTTP/1.1\r\nHost: dl.example.com\r\nHost: dl.example.com\r\nConnection: close\r\n\r\n');
  assert.equal(statusOf(v2), 400);
  assert.match(v2, /^docker-distribution-api-version: registry\/2\.0\r$/im);
  assert.deepEqual(jsonBodyOf(v2).errors.map((e: { code: string }) => e.code), ['DUPLICATE_HOST']);
  // One Host, spelled in any case, with other four-letter fields beside it.
  const one = await rawRequest(noneTrusted.port, 'GET /f HTTP/1.1\r\nhOsT: dl.example.com\r\nDate: x\r\nFrom: y\r\nConnection: close\r\n\r\n');
  assert.equal(statusOf(one), 307);
});

test('an HTTP/1.1 request without Host gets 400 MISSING_HOST with an id and a line (RFC 9112 §3.2); HTTP/1.0 may omit it', async () => {
  for (const target of ['/f', 'http://dl.example.com/f']) {
    const raw = await rawRequest(noneTrusted.port, `GET ${target} HTTP/1.1\r\nConnection: close\r\n\r\n`);
    assert.equal(statusOf(raw), 400, target);
    assert.match(raw, /"code":"MISSING_HOST"/);
    const id = /^x-request-id: (\S+)\r$/im.exec(raw)?.[1] ?? '';
    const [line] = await noneTrusted.linesFor(id);
    assert.equal(line.outcome, 'rejected');
    assert.equal(line.status, 400);
  }
  const v2 = await rawRequest(noneTrusted.port, 'GET /v2/tool/manifests/1 HTTP/1.1\r\nConnection: close\r\n\r\n');
  assert.deepEqual(jsonBodyOf(v2).errors.map((e: { code: string }) => e.code), ['MISSING_HOST']);
  // HTTP/1.0: no rule for the empty host, and an absolute target names one.
  assert.equal(statusOf(await rawRequest(noneTrusted.port, 'GET /f HTTP/1.0\r\n\r\n')), 404);
  assert.equal(statusOf(await rawRequest(noneTrusted.port, 'GET http://dl.example.com/f HTTP/1.0\r\n\r\n')), 307);
});

test('an Expect other than 100-continue is served as if absent (RFC 9110 §10.1.1 allows it), with its line', async () => {
  const raw = await rawRequest(noneTrusted.port, 'GET /f HTTP/1.1\r\nHost: dl.example.com\r\nExpect: foo\r\nConnection: close\r\n\r\n');
  assert.equal(statusOf(raw), 307);
  const [line] = await noneTrusted.linesFor(/^x-request-id: (\S+)\r$/im.exec(raw)?.[1] ?? '');
  assert.equal(line.outcome, 'redirect');
});

test('client IP: right-most X-Forwarded-For entry that is not a trusted proxy', async () => {
  const res = await request(loopbackTrusted.port, {
    path: '/f', host: 'dl.example.com', headers: { 'x-forwarded-for': '203.0.113.9, 198.51.100.7, 127.0.0.1', 'user-agent': 'ua/1', referer: 'https://r.example/' },
  });
  const [line] = await loopbackTrusted.linesFor(res.headers['x-request-id'] as string);
  assert.deepEqual(line.client, { ip: '198.51.100.7', userAgent: 'ua/1', referer: 'https://r.example/' });
});

test('X-Forwarded-For entries with a port are addresses; an entry that is no address is an unknown client (null), never written', async () => {
  const ipFor = async (gw: GatewayProcess, forwardedFor: string) => {
    const res = await request(gw.port, { path: '/f', host: 'dl.example.com', headers: { 'x-forwarded-for': forwardedFor } });
    return (await gw.linesFor(res.headers['x-request-id'] as string))[0].client.ip;
  };
  // As some load balancers write them.
  assert.equal(await ipFor(loopbackTrusted, '203.0.113.7:51234'), '203.0.113.7');
  assert.equal(await ipFor(loopbackTrusted, '[2001:db8::7]:443'), '2001:db8::7');
  assert.equal(await ipFor(loopbackTrusted, '[2001:db8::7]'), '2001:db8::7');
  // A trusted proxy's own entry with a port is still trusted and passed over.
  assert.equal(await ipFor(loopbackTrusted, '198.51.100.7, 127.0.0.1:4000'), '198.51.100.7');
  for (const junk of ['unknown', '_hidden', '<script>', '203.0.113.7:x', '[2001:db8::7]x', '999.1.1.1']) {
    assert.equal(await ipFor(loopbackTrusted, `198.51.100.7, ${junk}`), null, junk);
    // Anonymized, nothing is kept whole either.
    assert.equal(await ipFor(anonymized, `198.51.100.7, ${junk}`), null, junk);
  }
  assert.equal(await ipFor(anonymized, '203.0.113.77:8080'), '203.0.113.0');
  assert.equal(await ipFor(anonymized, '1:2:3:4:5:6:7:8'), '1:2:3::');
});

test('--anonymize-ip also holds for requests the parser refuses', async () => {
  const raw = await rawRequest(anonymized.port, 'GET /a b c HTTP/1.1\r\nHost: dl.example.com\r\n\r\n');
  assert.equal(statusOf(raw), 400);
  const [line] = await anonymized.linesFor(/^x-request-id: (\S+)\r$/im.exec(raw)![1]);
  assert.equal(line.client.ip, '127.0.0.0');
});

test('--anonymize-ip truncates IPv4 to /24 and IPv6 to /48', async () => {
  const v4 = await request(anonymized.port, { path: '/f', host: 'dl.example.com', headers: { 'x-forwarded-for': '203.0.113.77' } });
  const v6 = await request(anonymized.port, { path: '/f', host: 'dl.example.com', headers: { 'x-forwarded-for': '2001:db8:abcd:12::1' } });
  assert.equal((await anonymized.linesFor(v4.headers['x-request-id'] as string))[0].client.ip, '203.0.113.0');
  assert.equal((await anonymized.linesFor(v6.headers['x-request-id'] as string))[0].client.ip, '2001:db8:abcd::');
});
