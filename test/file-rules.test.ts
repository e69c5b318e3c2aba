// file-v1 and file-v2 through the real server process (SPEC §5).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.ts';
import { jsonBodyOf, rawRequest, request, statusOf } from './helpers/http-client.ts';

const D = 'files.test';
const R = 'regex.test';
const S = 'shadow.test';
const U = 'unicode.test';
const rule = (incoming: string, outgoing: string | null, id = 'p') => ({
  type: 'file-v1', domain: D, 'package-id': id, 'incoming-path': incoming, 'outgoing-url': outgoing,
});

let gw: GatewayProcess;
before(async () => {
  gw = await startGateway({
    manifest: {
      rules: [
        rule('/tool-{v}.tgz', 'https://github.com/o/tool/releases/download/v{v}/tool.tgz', 'tool'),
        rule('/x/{+rest}', 'https://h.example/{rest}'),
        rule('/{+path}', 'https://h.example/{+path}'),
        rule('/data?a={a}&b={b}', 'https://h.example/d?a={a}&b={b}'),
        rule('/data', 'https://h.example/api?src=gw'),
        rule('/ping/{v}', null, 'ping'),
        rule('/frag/{v}', 'https://h.example/f{?v}#top'),
        rule('/sub/{region}/{file}', 'https://{region}.cdn.example/{file}'),
        rule('/any/{+url}', '{+url}'),
        { type: 'file-v2', domain: R, 'package-id': 're', 'incoming-path': '^/re/(?P<os>linux|darwin)/(?<v>[0-9.]+)$', 'outgoing-url': 'https://h.example/{v}/{os}' },
        { type: 'file-v2', domain: R, 'package-id': 're-opt', 'incoming-path': '^/opt/(?<a>x)?(?<b>y)?$', 'outgoing-url': 'https://h.example/{b}' },
        { type: 'file-v2', domain: R, 'package-id': 're-z', 'incoming-path': 'z*', 'outgoing-url': 'https://h.example/z' },
        { type: 'file-v2', domain: R, 'package-id': 're-any', 'incoming-path': '^/any/(?<rest>.+)$', 'outgoing-url': 'https://h.example/any/{rest}' },
        // Rules 13 to 18: templates of one shape (see the shadowing test).
        ...[
          ['/a/{v}', 'https://first.example/{v}'], ['/a/{w}', 'https://second.example/{w}'],
          ['/b/{v}/{v}', 'https://same.example/{v}'], ['/b/{x}/{y}', 'https://pair.example/{x}/{y}'],
          ['/c/{x}/{y}', 'https://pair.example/{x}/{y}'], ['/c/{v}/{v}', 'https://same.example/{v}'],
        ].map(([incoming, outgoing]) => ({ type: 'file-v1', domain: S, 'package-id': 's', 'incoming-path': incoming, 'outgoing-url': outgoing })),
        { type: 'file-v1', domain: U, 'package-id': 'u', 'incoming-path': '/файл-{v}.tgz', 'outgoing-url': 'https://h.example/файл/{v}' },
        { type: 'file-v1', domain: U, 'package-id': 'u', 'incoming-path': '/my tool/{+rest}', 'outgoing-url': 'https://h.example/{+rest}' },
        { type: 'file-v1', domain: U, 'package-id': 'u', 'incoming-path': '/idn/{v}', 'outgoing-url': 'https://загрузки.пример.рф/файл/{v}' },
        { type: 'file-v1', domain: U, 'package-id': 'u', 'incoming-path': '/lit%2fx/{+rest}', 'outgoing-url': 'https://h.example/{+rest}' },
      ],
    },
  });
});
after(() => gw.stop());

async function get(path: string, headers: Record<string, string> = {}, host = D) {
  return request(gw.port, { path, host, headers });
}

test('literal text a URI cannot hold as it is (non-ASCII, a space) matches as clients send it, percent-encoded as UTF-8, in either case; a host name past ASCII is written in its ASCII form', async () => {
  const cases: [string, string][] = [
    ['/%D1%84%D0%B0%D0%B9%D0%BB-1.0.tgz', 'https://h.example/%D1%84%D0%B0%D0%B9%D0%BB/1.0'],
    // As curl sends it: triplets in lower case, which are the same (RFC 3986 §6.2.2.1); a {+var} keeps them, in upper case.
    ['/%d1%84%d0%b0%d0%b9%d0%bb-1.0.tgz', 'https://h.example/%D1%84%D0%B0%D0%B9%D0%BB/1.0'],
    ['/lit%2Fx/a%2fb', 'https://h.example/a%2Fb'],
    ['/my%20tool/a/b.tgz', 'https://h.example/a/b.tgz'],
    // A host name in its ASCII form (IDNA), as browsers send it; percent-encoded, it would name no host.
    ['/idn/1.0', 'https://xn--80agkcfl4bya.xn--e1afmkfd.xn--p1ai/%D1%84%D0%B0%D0%B9%D0%BB/1.0'],
  ];
  for (const [path, location] of cases) {
    const res = await get(path, {}, U);
    assert.equal(res.status, 307, path);
    assert.equal(res.headers.location, location);
  }
});

test('the spec example table', async () => {
  const cases: [string, number, string | null][] = [
    ['/tool-1.4.0.tgz', 307, 'https://github.com/o/tool/releases/download/v1.4.0/tool.tgz'],
    ['/x/a+b', 307, 'https://h.example/a%2Bb'],
    ['/a/b?q=1', 307, 'https://h.example/a/b?q=1'],
    ['/data?src=x&k=v', 307, 'https://h.example/api?src=gw&k=v'],
  ];
  for (const [path, status, location] of cases) {
    const res = await get(path);
    assert.equal(res.status, status, path);
    assert.equal(res.headers.location, location ?? undefined, path);
    assert.equal(res.body.length, 0);
  }
});

test('a template of the shape of one before it is never used, and a warning says so, unless the first names a variable twice', async () => {
  const warnings = gw.logs.filter((l) => l.msg === 'manifest warning').map((l) => l.problem);
  assert.deepEqual(warnings, ['/rules/14: never used: /rules/13 on the same domain answers first', '/rules/18: never used: /rules/17 on the same domain answers first']);
  const at = async (path: string) => (await get(path, {}, S)).headers.location;
  assert.equal(await at('/a/1'), 'https://first.example/1');
  // /b/{v}/{v} matches equal values only; the rule after it answers the others.
  assert.equal(await at('/b/1/1'), 'https://same.example/1');
  assert.equal(await at('/b/1/2'), 'https://pair.example/1/2');
  assert.equal(await at('/c/1/1'), 'https://pair.example/1/1');
});

test('a query template must match literally and in order', async () => {
  const ok = await get('/data?a=1&b=2');
  assert.equal(ok.headers.location, 'https://h.example/d?a=1&b=2');
  // Order differs: the ?-template does not match; the plain /data rule answers.
  const other = await get('/data?b=2&a=1');
  assert.equal(other.headers.location, 'https://h.example/api?src=gw&b=2&a=1');
});

test('without an outgoing-url: 200, empty body, variables captured', async () => {
  const res = await get('/ping/1.0');
  assert.equal(res.status, 200);
  assert.equal(res.body.length, 0);
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.deepEqual(line.capture, { type: 'file', package: 'ping', url: null, variables: { v: '1.0' } });
  assert.equal(line.outcome, 'respond');
});

test('redirect capture holds the target and the variables', async () => {
  const res = await get('/tool-2.0.tgz?utm=1');
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.equal(line.status, 307);
  assert.equal(line.outcome, 'redirect');
  assert.equal(line.path, '/tool-2.0.tgz');
  assert.equal(line.query, 'utm=1');
  assert.deepEqual(line.capture, {
    type: 'file', package: 'tool', url: 'https://github.com/o/tool/releases/download/v2.0/tool.tgz?utm=1', variables: { v: '2.0' },
  });
});

test('query merge: target parameters first, first occurrence wins, RFC 3986 encoding', async () => {
  const res = await get('/data?k=a+b&k=second&src=x&sp=%20%2F&flag');
  assert.equal(res.headers.location, 'https://h.example/api?src=gw&k=a%20b&sp=%20%2F&flag');
});

test('the query goes before a fragment', async () => {
  const res = await get('/frag/1?x=2');
  assert.equal(res.headers.location, 'https://h.example/f?v=1&x=2#top');
});

test('{var} values are decoded then re-encoded; {+var} values are kept as sent', async () => {
  assert.equal((await get('/tool-a%20b.tgz')).headers.location, 'https://github.com/o/tool/releases/download/va%20b/tool.tgz');
  // {+rest} keeps "%C3%A9" as sent; {rest} then encodes its "%" (RFC 6570 §3.2.2).
  assert.equal((await get('/x/caf%C3%A9')).headers.location, 'https://h.example/caf%25C3%25A9');
  assert.equal((await get('/a%2Fb')).headers.location, 'https://h.example/a%2Fb');
});

test('file-v2: named groups, (?P<name>) spelling, empty and partial matches', async () => {
  assert.equal((await get('/re/linux/1.2', {}, R)).headers.location, 'https://h.example/1.2/linux');
  // (?<b>) unbound: the rule does not match.
  assert.equal((await get('/opt/x', {}, R)).status, 404);
  assert.equal((await get('/opt/y', {}, R)).headers.location, 'https://h.example/y');
  // z* matches the empty string at the start of every path: the leftmost
  // match is empty, and an empty match does not count.
  assert.equal((await get('/abc', {}, R)).status, 404);
  assert.equal((await get('/zz', {}, R)).status, 404);
});

test('file-v2 values are decoded and re-encoded by the template', async () => {
  assert.equal((await get('/any/a%20b', {}, R)).headers.location, 'https://h.example/any/a%20b');
  assert.equal((await get('/any/%2e%2e', {}, R)).status, 400);
});

test('file-v1 takes precedence over file-v2', async () => {
  // On files.test, /{+path} (file-v1) answers before any regex could.
  assert.equal((await get('/re/linux/1.2')).headers.location, 'https://h.example/re/linux/1.2');
});

test('file-v2 capture', async () => {
  const res = await get('/re/darwin/3', {}, R);
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.deepEqual(line.capture, { type: 'file', package: 're', url: 'https://h.example/3/darwin', variables: { os: 'darwin', v: '3' } });
});

test('body events: concatenated and newline-separated objects, non-objects skipped, stop at bad JSON', async () => {
  const res = await request(gw.port, {
    method: 'POST', path: '/ping/2', host: D,
    body: '{"a":1}{"b":{"c":"}"}}\n[1,2]\n"s"\n42\n{"d":true}\n{oops}\n{"never":1}',
  });
  assert.equal(res.status, 200);
  const lines = await gw.linesFor(res.headers['x-request-id'] as string, 3);
  await new Promise((r) => setTimeout(r, 200));
  const all = gw.lines.filter((l) => l.requestId === res.headers['x-request-id']);
  assert.deepEqual(all.map((l) => (l.capture as { body: unknown }).body), [{ a: 1 }, { b: { c: '}' } }, { d: true }]);
  assert.ok(lines.every((l) => (l.capture as { variables: unknown }).variables !== undefined));
});

test('a body with no object gives one line without body', async () => {
  const res = await request(gw.port, { method: 'POST', path: '/ping/3', host: D, body: 'not json' });
  assert.equal(res.status, 200);
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.equal('body' in (line.capture as object), false);
});

test('a body over the limit gets 413 and one line', async () => {
  const res = await request(gw.port, { method: 'POST', path: '/ping/4', host: D, body: '{"a":"' + 'x'.repeat(70_000) + '"}' });
  assert.equal(res.status, 413);
  assert.equal(JSON.parse(res.text).error.code, 'BODY_TOO_LARGE');
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.equal(line.outcome, 'rejected');
});

test('bad input: 4xx, never 500, never an injected header', async () => {
  const cases: [string, number, string][] = [
    ['/tool-%ZZ.tgz', 404, 'NOT_FOUND'], // not a %XX triplet: {v} does not match, no other rule can
    ['/tool-%C3%28.tgz', 400, 'BAD_ENCODING'], // a triplet that is not UTF-8
    ['/tool-%0D%0ALocation:%20x.tgz', 400, 'BAD_VARIABLE'],
    ['/x/%2e%2e', 400, 'BAD_VARIABLE'],
    ['/x/..', 400, 'BAD_VARIABLE'],
    ['/a/../../etc/passwd', 400, 'BAD_VARIABLE'],
    ['/data?k=%E0%A4%A', 400, 'BAD_ENCODING'],
  ];
  for (const [path, status, code] of cases) {
    const res = await get(path);
    assert.equal(res.status, status, path);
    if (status !== 404) assert.equal(JSON.parse(res.text).error.code, code, path);
    assert.equal(res.headers.location, undefined, path);
    const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
    assert.equal(line.status, status);
  }
});

test('a variable cannot move the redirect to another origin', async () => {
  assert.equal((await get('/sub/eu/f.tgz')).headers.location, 'https://eu.cdn.example/f.tgz');
  // '@' is not unreserved, so {region} cannot hold it; %40 is decoded and re-encoded.
  const at = await get('/sub/evil.com%40x/f');
  assert.equal(at.status, 400);
  assert.equal(JSON.parse(at.text).error.code, 'BAD_TARGET');
  // A fully variable target must still be an absolute http(s) URL without userinfo.
  assert.equal((await get('/any/https://ok.example/a')).headers.location, 'https://ok.example/a');
  for (const bad of ['/any/javascript:alert(1)', '/any/https://user@evil.example/', '/any//evil.example']) {
    const res = await get(bad);
    assert.equal(res.status, 400, bad);
  }
});

test('a huge URL gets 414 and a line', async () => {
  const raw = await rawRequest(gw.port, `GET /x/${'a'.repeat(9000)} HTTP/1.1\r\nHost: ${D}\r\nConnection: close\r\n\r\n`);
  assert.equal(statusOf(raw), 414);
  // Under /v2 in the registry's format, which docker prints.
  const v2 = await rawRequest(gw.port, `GET /v2/${'a'.repeat(9000)}/manifests/1 HTTP/1.1\r\nHost: ${D}\r\nConnection: close\r\n\r\n`);
  assert.equal(statusOf(v2), 414);
  assert.match(v2, /^docker-distribution-api-version: registry\/2\.0\r$/im);
  assert.deepEqual(jsonBodyOf(v2).errors.map((e: { code: string }) => e.code), ['URL_TOO_LONG']);
});

test('a malformed request line gets 400, never a crash', async () => {
  const raw = await rawRequest(gw.port, 'GET /a b c HTTP/1.1\r\nHost: files.test\r\n\r\n');
  assert.equal(statusOf(raw), 400);
  const res = await get('/tool-1.tgz');
  assert.equal(res.status, 307, 'still serving');
});

test('a connection the client resets (idle after an answer, or mid-head) writes no line: nothing was answered', async () => {
  // A gateway of its own: its lines are this test's alone.
  const own = await startGateway({ manifest: { rules: [{ type: 'file-v1', domain: D, 'package-id': 'p', 'incoming-path': '/f', 'outgoing-url': 'https://x.example/f' }] } });
  const reset = (raw: string, after: 'answer' | 'write') =>
    new Promise<void>((resolve) => {
      const socket = connect(own.port, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.on('close', () => resolve());
      socket.write(raw);
      if (after === 'answer') socket.once('data', () => setTimeout(() => socket.resetAndDestroy(), 100));
      else setTimeout(() => socket.resetAndDestroy(), 100);
    });
  try {
    await reset(`GET /f HTTP/1.1\r\nHost: ${D}\r\n\r\n`, 'answer');
    await reset(`GET /f HTTP/1.1\r\nHost: ${D}`, 'write');
    // A request after them: its line comes after any line of theirs.
    await new Promise((r) => setTimeout(r, 200));
    const last = await request(own.port, { path: '/f', host: D });
    await own.linesFor(last.headers['x-request-id'] as string);
    assert.deepEqual(own.lines.map((l) => `${l.status} ${l.path}`), ['307 /f', '307 /f']);
  } finally {
    await own.stop();
  }
});

test('CONNECT gets 405 with Allow, and a line (node closed the connection without a word)', async () => {
  const raw = await rawRequest(gw.port, `CONNECT ${D}:443 HTTP/1.1\r\nHost: ${D}:443\r\n\r\n`);
  assert.equal(statusOf(raw), 405);
  assert.match(raw, /^allow: GET, HEAD, POST\r$/im);
  assert.equal(jsonBodyOf(raw).error.code, 'METHOD_NOT_ALLOWED');
  const [line] = await gw.linesFor(/^x-request-id: (\S+)\r$/im.exec(raw)![1]);
  assert.equal(line.method, 'CONNECT');
  assert.equal(line.status, 405);
  assert.equal(line.outcome, 'rejected');
  assert.equal((await get('/tool-1.tgz')).status, 307, 'still serving');
});

test('HEAD gets the headers of GET', async () => {
  const res = await request(gw.port, { method: 'HEAD', path: '/tool-1.tgz', host: D });
  assert.equal(res.status, 307);
  assert.equal(res.headers.location, 'https://github.com/o/tool/releases/download/v1/tool.tgz');
});
