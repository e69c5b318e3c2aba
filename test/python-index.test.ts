// SPEC §6: the simple index over HTTP (pages, negotiation, ETags, redirects).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.ts';
import { metricValue, rawRequest, request, stalledClients, statusOf } from './helpers/http-client.ts';
import { waitUntil } from './helpers/registry.ts';

const D = 'py.test';
const JSON_TYPE = 'application/vnd.pypi.simple.v1+json';
const rule = (extra: Record<string, unknown>) => ({
  type: 'python-v1', domain: D, 'package-id': 'pkg-frob', 'package-name': 'Frob_Nicate', version: '1.0',
  'file-name': 'frob_nicate-1.0-py3-none-any.whl', 'backend-url': 'https://files.example/frob_nicate-1.0-py3-none-any.whl', ...extra,
});

let gw: GatewayProcess;
before(async () => {
  gw = await startGateway({
    manifest: {
      rules: [
        rule({ 'hash-value': { type: 'sha256', hash: 'AB'.repeat(32) }, 'requires-python': '>=3.8', 'gpg-sig': false }),
        rule({
          'file-name': 'frob_nicate-2.0.tar.gz', version: '2.0', 'backend-url': 'https://files.example/frob_nicate-2.0.tar.gz#sha256=00',
          yanked: 'broken <build>', 'core-metadata': { type: 'sha256', hash: 'cd'.repeat(32) }, size: 1234, 'upload-time': '2024-01-02T03:04:05.000000Z',
        }),
        { type: 'python-v1', domain: D, 'package-id': 'pkg-other', 'package-name': 'other', version: '0.1', 'file-name': 'other-0.1.tar.gz', 'backend-url': 'https://files.example/other-0.1.tar.gz', 'backend-simple-index': 'https://pypi.org/simple/' },
        { type: 'catch-all-v1', domain: D, 'package-id': 'rest' },
      ],
    },
  });
});
after(() => gw.stop());

const get = (path: string, headers: Record<string, string> = {}, method = 'GET') => request(gw.port, { path, host: D, headers, method });

test('root index: HTML by default, one link per project, Vary: Accept, ETag', async () => {
  const res = await get('/simple/');
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(res.headers.vary, 'Accept');
  assert.match(String(res.headers.etag), /^"[^"]+"$/);
  assert.match(res.text, /^<!DOCTYPE html>/);
  assert.match(res.text, /<a href="\/simple\/frob-nicate\/">frob-nicate<\/a>/);
  assert.match(res.text, /<a href="\/simple\/other\/">other<\/a>/);
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.deepEqual(line.capture, { type: 'python', package: null, version: null, file: null, url: null });
});

test('project page: hash fragments, escaped data-requires-python, gpg-sig, yanked, core-metadata', async () => {
  const res = await get('/simple/frob-nicate/');
  assert.equal(res.status, 200);
  assert.match(res.text, new RegExp(`href="/simple/frob-nicate/frob_nicate-1\\.0-py3-none-any\\.whl#sha256=${'ab'.repeat(32)}"`));
  assert.match(res.text, /data-requires-python="&gt;=3\.8"/);
  assert.match(res.text, /data-gpg-sig="false"/);
  assert.match(res.text, /data-yanked="broken &lt;build&gt;"/);
  assert.match(res.text, new RegExp(`data-core-metadata="sha256=${'cd'.repeat(32)}" data-dist-info-metadata="sha256=${'cd'.repeat(32)}"`));
  assert.doesNotMatch(res.text, /1234|2024-01-02/, 'size and upload-time are JSON only');
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.deepEqual(line.capture, { type: 'python', package: 'pkg-frob', version: null, file: null, url: null });
});

test('absent optional fields write nothing', async () => {
  const html = (await get('/simple/other/')).text;
  assert.match(html, /<a href="\/simple\/other\/other-0\.1\.tar\.gz">other-0\.1\.tar\.gz<\/a>/);
  assert.doesNotMatch(html, /data-/);
  const json = JSON.parse((await get('/simple/other/', { accept: JSON_TYPE })).text);
  assert.deepEqual(json, {
    meta: { 'api-version': '1.0' }, name: 'other',
    files: [{ filename: 'other-0.1.tar.gz', url: '/simple/other/other-0.1.tar.gz', hashes: {} }],
  });
});

test('PEP 691 JSON when Accept prefers it, with q-values', async () => {
  const pipAccept = 'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01';
  const res = await get('/simple/frob-nicate/', { accept: pipAccept });
  assert.equal(res.headers['content-type'], JSON_TYPE);
  const json = JSON.parse(res.text);
  assert.equal(json.name, 'frob-nicate');
  assert.deepEqual(json.files[0], {
    filename: 'frob_nicate-1.0-py3-none-any.whl', url: '/simple/frob-nicate/frob_nicate-1.0-py3-none-any.whl',
    hashes: { sha256: 'ab'.repeat(32) }, 'requires-python': '>=3.8', 'gpg-sig': false,
  });
  assert.equal(json.files[1].yanked, 'broken <build>');
  assert.deepEqual(json.files[1]['core-metadata'], { sha256: 'cd'.repeat(32) });
  // PEP 714: not the old key in JSON, on which pip 22.3 to 23.1 fail.
  assert.equal(json.files[1]['dist-info-metadata'], undefined);
  assert.equal(json.files[1].size, 1234);
  assert.equal(json.files[1]['upload-time'], '2024-01-02T03:04:05.000000Z');
  assert.equal(json.meta['api-version'], '1.0', 'not every file has a size: PEP 700 fields are extras');
  const root = JSON.parse((await get('/simple/', { accept: 'application/vnd.pypi.simple.latest+json' })).text);
  assert.deepEqual(root, { meta: { 'api-version': '1.0' }, projects: [{ name: 'frob-nicate' }, { name: 'other' }] });
  const html = await get('/simple/', { accept: 'application/vnd.pypi.simple.v1+json;q=0.2, text/html' });
  assert.equal(html.headers['content-type'], 'text/html; charset=utf-8');
  const v1html = await get('/simple/', { accept: 'application/vnd.pypi.simple.v1+html' });
  assert.equal(v1html.headers['content-type'], 'application/vnd.pypi.simple.v1+html');
});

test('406 when nothing offered is acceptable', async () => {
  const res = await get('/simple/', { accept: 'application/xml, text/html;q=0' });
  assert.equal(res.status, 406);
  assert.equal(JSON.parse(res.text).error.code, 'NOT_ACCEPTABLE');
});

test('PEP 691 ?format= takes precedence over Accept; a type the index does not serve gets 406', async () => {
  const json = await get(`/simple/frob-nicate/?format=${encodeURIComponent(JSON_TYPE)}`, { accept: 'text/html' });
  assert.equal(json.status, 200);
  assert.equal(json.headers['content-type'], JSON_TYPE);
  assert.equal(JSON.parse(json.text).name, 'frob-nicate');
  // As a browser sends it: `+` unencoded, which form encoding reads as a space.
  const latest = await get('/simple/?x=1&format=application/vnd.pypi.simple.latest+html', { accept: JSON_TYPE });
  assert.equal(latest.headers['content-type'], 'application/vnd.pypi.simple.v1+html');
  const html = await get('/simple/?format=text/html', { accept: JSON_TYPE });
  assert.equal(html.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal((await get('/simple/?format=text/html', { 'if-none-match': html.headers.etag as string })).status, 304);
  for (const format of ['json', 'application/vnd.pypi.simple.v2%2Bjson', '*/*', '']) {
    const res = await get(`/simple/?format=${format}`, { accept: JSON_TYPE });
    assert.equal(res.status, 406, format);
    assert.equal(JSON.parse(res.text).error.code, 'NOT_ACCEPTABLE');
  }
  // Another parameter alone leaves the choice to Accept.
  assert.equal((await get('/simple/?page=2', { accept: JSON_TYPE })).headers['content-type'], JSON_TYPE);
});

test('every answer of the index may be read by a web page (Access-Control-Allow-Origin: *), as micropip in a browser needs', async () => {
  const micropip = { accept: 'application/vnd.pypi.simple.v1+json, */*;q=0.01', origin: 'https://jupyterlite.example' };
  const page = await get('/simple/frob-nicate/', micropip);
  assert.equal(page.headers['content-type'], JSON_TYPE);
  const answers = [
    page,
    await get('/simple/frob-nicate/', { 'if-none-match': page.headers.etag as string, ...micropip }),
    await get('/simple/'),
    await get('/simple/Frob.Nicate/', micropip),
    await get('/simple/frob-nicate/frob_nicate-1.0-py3-none-any.whl', micropip),
    await get('/simple/frob-nicate/frob_nicate-2.0.tar.gz.metadata', micropip),
    await get('/simple/nope/', micropip),
    await get('/simple/frob-nicate/nope.whl', micropip),
    await get('/simple/%ff/', micropip),
    await get('/simple/', { accept: 'application/xml' }),
  ];
  assert.deepEqual(answers.map((r) => r.status), [200, 304, 200, 301, 307, 307, 404, 404, 400, 406]);
  for (const res of answers) assert.equal(res.headers['access-control-allow-origin'], '*', String(res.status));
});

test('strong ETag per representation; If-None-Match gives 304 with the ETag', async () => {
  const html = await get('/simple/frob-nicate/');
  const json = await get('/simple/frob-nicate/', { accept: JSON_TYPE });
  assert.notEqual(html.headers.etag, json.headers.etag);
  const again = await get('/simple/frob-nicate/', { 'if-none-match': `"nope", ${html.headers.etag}` });
  assert.equal(again.status, 304);
  assert.equal(again.headers.etag, html.headers.etag);
  assert.equal(again.body.length, 0);
  const [line] = await gw.linesFor(again.headers['x-request-id'] as string);
  assert.equal(line.outcome, 'not-modified');
  assert.equal((await get('/simple/frob-nicate/', { 'if-none-match': json.headers.etag as string })).status, 200, 'HTML tag does not match JSON');
});

test('HEAD gives the headers of GET, Content-Length included, and no body', async () => {
  const full = await get('/simple/frob-nicate/');
  const head = await get('/simple/frob-nicate/', {}, 'HEAD');
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal(head.headers['content-length'], String(full.body.length));
  assert.equal(head.headers.etag, full.headers.etag);
});

test('file downloads: 307 to backend-url for GET and HEAD, with a python capture', async () => {
  for (const method of ['GET', 'HEAD']) {
    const res = await get('/simple/frob-nicate/frob_nicate-1.0-py3-none-any.whl', {}, method);
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, 'https://files.example/frob_nicate-1.0-py3-none-any.whl');
    const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
    assert.deepEqual(line.capture, {
      type: 'python', package: 'pkg-frob', version: '1.0', file: 'frob_nicate-1.0-py3-none-any.whl', url: 'https://files.example/frob_nicate-1.0-py3-none-any.whl',
    });
  }
});

test('a backend-url with characters a Location field cannot hold (non-ASCII, a space) is sent percent-encoded as UTF-8, and a host name past ASCII in its ASCII form, as a browser sends them', async () => {
  const own = await startGateway({
    manifest: {
      rules: [
        { type: 'python-v1', domain: D, 'package-id': 'u', 'package-name': 'uni', version: '1.0', 'file-name': 'uni-1.0.tar.gz', 'backend-url': 'https://files.example/файлы/my uni-1.0.tar.gz', 'core-metadata': true },
        { type: 'python-v1', domain: D, 'package-id': 'u', 'package-name': 'uni', version: '2.0', 'file-name': 'uni-2.0.tar.gz', 'backend-url': 'https://файлы.example/uni-2.0.tar.gz' },
      ],
    },
  });
  try {
    const encoded = 'https://files.example/%D1%84%D0%B0%D0%B9%D0%BB%D1%8B/my%20uni-1.0.tar.gz';
    const res = await request(own.port, { path: '/simple/uni/uni-1.0.tar.gz', host: D });
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, encoded);
    const [line] = await own.linesFor(res.headers['x-request-id'] as string);
    assert.equal((line.capture as { url: string }).url, encoded);
    assert.equal((await request(own.port, { path: '/simple/uni/uni-1.0.tar.gz.metadata', host: D })).headers.location, `${encoded}.metadata`);
    // A host name in its ASCII form (IDNA), as browsers send it.
    assert.equal((await request(own.port, { path: '/simple/uni/uni-2.0.tar.gz', host: D })).headers.location, 'https://xn--80asg7a0b.example/uni-2.0.tar.gz');
  } finally {
    await own.stop();
  }
});

test('PEP 658: <file>.metadata redirects to <backend-url>.metadata', async () => {
  const res = await get('/simple/frob-nicate/frob_nicate-2.0.tar.gz.metadata');
  assert.equal(res.status, 307);
  assert.equal(res.headers.location, 'https://files.example/frob_nicate-2.0.tar.gz.metadata');
  assert.equal((await get('/simple/frob-nicate/frob_nicate-1.0-py3-none-any.whl.metadata')).status, 404, 'no core-metadata declared');
});

test('PEP 503 normalization: non-normalized names and missing slashes are redirected', async () => {
  const cases: [string, string][] = [
    ['/simple/Frob_Nicate/', '/simple/frob-nicate/'],
    ['/simple/FROB..nicate', '/simple/frob-nicate/'],
    ['/simple/frob-nicate', '/simple/frob-nicate/'],
    ['/simple/Frob%5FNicate/frob_nicate-2.0.tar.gz', '/simple/frob-nicate/frob_nicate-2.0.tar.gz'],
    ['/simple', '/simple/'],
    // The query is kept (PEP 691's optional ?format=, a cache buster).
    ['/simple/Frob_Nicate?format=text%2Fhtml', '/simple/frob-nicate/?format=text%2Fhtml'],
    ['/simple?x=1', '/simple/?x=1'],
  ];
  for (const [path, location] of cases) {
    const res = await get(path);
    assert.equal(res.status, 301, path);
    assert.equal(res.headers.location, location, path);
  }
});

test('unknown projects and files: 404', async () => {
  assert.equal((await get('/simple/nope/')).status, 404);
  assert.equal((await get('/simple/frob-nicate/nope.whl')).status, 404);
  assert.equal((await get('/simple/%E0%A4%A/')).status, 400);
});

test('other methods and paths fall through to later kinds', async () => {
  assert.equal((await get('/simple/', {}, 'POST')).status, 200, 'catch-all answers');
  assert.equal((await get('/other')).status, 200);
});

test('pages with text beyond ASCII: Content-Length counts UTF-8 bytes, the body and ETag are those bytes', async () => {
  const yanked = 'défaut ✓ — ünïcode';
  // Enough projects for a root index over 8 KB: large pages are held as bytes, small ones as strings.
  const many = Array.from({ length: 400 }, (_, i) => rule({ 'package-name': `prøject-${i}`, 'package-id': `p${i}` }));
  const own = await startGateway({ manifest: { rules: [rule({ yanked }), ...many] } });
  try {
    const root = await request(own.port, { path: '/simple/', host: D, headers: { accept: JSON_TYPE } });
    assert.ok(root.body.length > 8192, String(root.body.length));
    assert.equal(root.headers['content-length'], String(root.body.length));
    assert.equal(JSON.parse(root.text).projects.length, 401);
    for (const accept of ['text/html', JSON_TYPE]) {
      const res = await request(own.port, { path: '/simple/frob-nicate/', host: D, headers: { accept } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['content-length'], String(res.body.length));
      // The whole body arrived: the length was not counted in UTF-16 units.
      if (accept === JSON_TYPE) assert.equal(JSON.parse(res.text).files[0].yanked, yanked);
      else assert.ok(res.text.includes(yanked) && res.text.trimEnd().endsWith('</html>'), res.text);
      const again = await request(own.port, { path: '/simple/frob-nicate/', host: D, headers: { accept, 'if-none-match': String(res.headers.etag) } });
      assert.equal(again.status, 304);
    }
  } finally {
    await own.stop();
  }
});

test('Expect: 100-continue on a request pipelined behind another: the large page that answers it arrives whole, with no 100 (Continue) inside', async () => {
  const many = Array.from({ length: 400 }, (_, i) => rule({ 'package-name': `project-${i}`, 'package-id': `p${i}` }));
  const own = await startGateway({ manifest: { rules: [rule({}), ...many] } });
  try {
    const page = (await request(own.port, { path: '/simple/', host: D })).text;
    assert.ok(page.length > 8192, String(page.length));
    // Alone, the request gets its 100 (Continue) first, as node sends it.
    const alone = await rawRequest(own.port, `GET /simple/ HTTP/1.1\r\nhost: ${D}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`);
    assert.match(alone, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    assert.ok(alone.endsWith(`\r\n\r\n${page}`));
    // Behind another: node wrote the page's head, then the 100, then the page.
    const behind = await rawRequest(own.port, `GET /simple/frob-nicate/ HTTP/1.1\r\nhost: ${D}\r\n\r\nGET /simple/ HTTP/1.1\r\nhost: ${D}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n`);
    assert.equal(behind.match(/HTTP\/1\.1 /g)?.length, 2, behind.slice(0, 2000));
    assert.ok(behind.endsWith(`\r\n\r\n${page}`), behind.slice(-300));
  } finally {
    await own.stop();
  }
});

test('a large page (a project with 15,000 files): clients that stop reading are cut off after --send-timeout; one that reads gets it whole', { timeout: 60_000 }, async () => {
  // About 6 MB of HTML, more than the kernel's buffers take in while nobody reads (about 4 MB).
  const files = Array.from({ length: 15_000 }, (_, i) => `big_project-1.0.${i}-${'x'.repeat(200)}.tar.gz`);
  const big = await startGateway({
    manifest: {
      rules: files.map((file, i) => ({
        type: 'python-v1', domain: D, 'package-id': 'big', 'package-name': 'big-project', version: `1.0.${i}`, 'file-name': file,
        'backend-url': `https://files.example/${file}`, 'hash-value': { type: 'sha256', hash: 'ab'.repeat(32) },
      })),
    },
    args: ['--send-timeout', '1000'],
  });
  try {
    const whole = await request(big.port, { path: '/simple/big-project/', host: D });
    assert.equal(whole.status, 200);
    assert.equal(whole.text.match(/<a /g)?.length, 15_000);
    const stalled = stalledClients(big.port, `GET /simple/big-project/ HTTP/1.1\r\nhost: ${D}\r\n\r\n`, 3);
    // Well past the send timeout (the kernel's buffers grow for a second or two, and the writes go on meanwhile).
    await new Promise((r) => setTimeout(r, 7000));
    for (const got of await stalled.resume()) assert.ok(got < whole.text.length, `${got} bytes of ${whole.text.length}`);
    assert.equal(await metricValue(big.adminPort, 'gateway_send_timeouts_total'), 3);
  } finally {
    await big.stop();
  }
});

test('a page over 8 KiB is gzipped for clients that accept it: its own ETag and 304, Vary: Accept-Encoding; small pages and other clients get it as it is', async () => {
  const files = Array.from({ length: 300 }, (_, i) => `many-1.0.${i}.tar.gz`);
  const many = await startGateway({
    manifest: {
      rules: files.map((file, i) => ({
        type: 'python-v1', domain: D, 'package-id': 'many', 'package-name': 'many', version: `1.0.${i}`, 'file-name': file,
        'backend-url': `https://files.example/${file}`, 'hash-value': { type: 'sha256', hash: 'ab'.repeat(32) },
      })),
    },
  });
  const page = (headers: Record<string, string>, method = 'GET') => request(many.port, { path: '/simple/many/', host: D, headers, method });
  try {
    const plain = await page({});
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.ok(plain.body.length > 8192, `${plain.body.length} bytes`);
    assert.equal(plain.headers.vary, 'Accept, Accept-Encoding');
    for (const acceptEncoding of ['gzip, deflate', 'br;q=1, gzip;q=0.5', 'x-gzip', '*']) {
      const gz = await page({ 'accept-encoding': acceptEncoding });
      assert.equal(gz.headers['content-encoding'], 'gzip', acceptEncoding);
      assert.equal(gz.headers.vary, 'Accept, Accept-Encoding');
      assert.ok(gz.body.length < plain.body.length / 4, `${gz.body.length} bytes gzipped`);
      assert.deepEqual(gunzipSync(gz.body), plain.body);
      // A representation of its own: its own strong ETag, and 304 for it.
      assert.notEqual(gz.headers.etag, plain.headers.etag);
      const revalidated = await page({ 'accept-encoding': acceptEncoding, 'if-none-match': String(gz.headers.etag) });
      assert.equal(revalidated.status, 304);
      assert.equal(revalidated.headers.etag, gz.headers.etag);
    }
    for (const acceptEncoding of ['gzip;q=0', 'identity', 'br', '*;q=0']) {
      assert.equal((await page({ 'accept-encoding': acceptEncoding })).headers['content-encoding'], undefined, acceptEncoding);
    }
    // The identity ETag does not revalidate the gzip variant, nor the other way round.
    assert.equal((await page({ 'accept-encoding': 'gzip', 'if-none-match': String(plain.headers.etag) })).status, 200);
    // JSON too; HEAD gives the gzip variant's length.
    const json = await page({ accept: JSON_TYPE, 'accept-encoding': 'gzip' });
    assert.equal(JSON.parse(gunzipSync(json.body).toString('utf8')).files.length, 300);
    const head = await page({ 'accept-encoding': 'gzip' }, 'HEAD');
    assert.equal(head.headers['content-encoding'], 'gzip');
    assert.equal(Number(head.headers['content-length']), (await page({ 'accept-encoding': 'gzip' })).body.length);
  } finally {
    await many.stop();
  }
  // A small page is sent as it is, whatever the client accepts.
  const small = await get('/simple/frob-nicate/', { 'accept-encoding': 'gzip' });
  assert.equal(small.headers['content-encoding'], undefined);
  assert.equal(small.headers.vary, 'Accept');
});

test('with --keep-alive-timeout 0, a connection that was sent a large page stays open: the send timeout ends with its answer', async () => {
  const files = Array.from({ length: 300 }, (_, i) => `many-1.0.${i}.tar.gz`);
  const own = await startGateway({
    manifest: {
      rules: files.map((file, i) => ({
        type: 'python-v1', domain: D, 'package-id': 'many', 'package-name': 'many', version: `1.0.${i}`, 'file-name': file, 'backend-url': `https://files.example/${file}`,
      })),
    },
    args: ['--keep-alive-timeout', '0', '--send-timeout', '500'],
  });
  const socket = connect(own.port, '127.0.0.1');
  try {
    let received = '';
    let closed = false;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (received += d));
    socket.on('close', () => (closed = true));
    const answer = async (): Promise<string> => {
      socket.write(`GET /simple/many/ HTTP/1.1\r\nhost: ${D}\r\n\r\n`);
      await waitUntil(() => closed || wholeAnswer(received) !== null, 5000, () => `an answer, got ${received.length} bytes`);
      const whole = wholeAnswer(received) ?? '';
      received = received.slice(whole.length);
      return whole;
    };
    const first = await answer();
    assert.equal(statusOf(first), 200);
    assert.ok(first.length > 8192, `${first.length} bytes`);
    // Idle for three send timeouts: the connection has no timeout of its own to keep.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(closed, false, 'the idle connection was closed');
    assert.equal(statusOf(await answer()), 200);
  } finally {
    socket.destroy();
    await own.stop();
  }
});

/** The first whole answer (head and Content-Length bytes of body) at the start of `text`, or null. */
function wholeAnswer(text: string): string | null {
  const headEnd = text.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const length = Number(/\r\ncontent-length: (\d+)/i.exec(text.slice(0, headEnd))?.[1] ?? 0);
  const end = headEnd + 4 + length;
  return text.length >= end ? text.slice(0, end) : null;
}
