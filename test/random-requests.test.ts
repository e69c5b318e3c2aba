// Seeded random requests against every rule type at once: the example
// manifest, plus docker, python and npm rules: an npm registry on 127.0.0.1
// that serves one package document, and backends that are down. Methods,
// paths, queries, hosts, headers (Accept and Accept-Encoding among them)
// and bodies are drawn from values that reach the rules and from bytes
// that should not. Each request gets an answer that is no server error
// (502 only: a backend was asked and is down), each answer's request id
// has its analytics line, and the gateway keeps serving and logs no error.
// Then requests the rules answer, pipelined several to a connection: each
// gets its own answer, whole and in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.ts';
import { rawRequest, statusOf } from './helpers/http-client.ts';
import { seededRandom } from './helpers/random.ts';

const REQUESTS = 1500;
const AT_ONCE = 20;

/**
 * The example manifest, plus docker, python and npm rules (`more` too), and
 * an npm registry on 127.0.0.1 serving one document; `fn` runs against the
 * gateway, and both are stopped after it.
 */
async function withEveryRuleType(args: string[], more: object[], fn: (gw: GatewayProcess) => Promise<void>): Promise<void> {
  const manifest = JSON.parse(readFileSync(new URL('../config/manifest.json', import.meta.url), 'utf8')) as { rules: object[] };
  manifest.rules.push(
    ...more,
    { type: 'docker-v1', domain: 'cr.example.com', 'package-id': 'd', 'repository-name': 'org/app', registry: 'ghcr.io' },
    { type: 'python-v1', domain: 'py.example.com', 'package-id': 'p', 'package-name': 'tool', 'file-name': 'tool-1.0-py3-none-any.whl', version: '1.0', 'backend-url': 'https://files.example/tool-1.0-py3-none-any.whl' },
    { type: 'npm-v1', domain: 'npm.example.com', 'package-id': 'n', 'package-name': 'tool', registry: 'http://127.0.0.1:1' },
  );
  const doc = JSON.stringify({
    // Over 8 KiB: gzipped for clients that accept it.
    name: 'live', readme: 'r'.repeat(10_000), 'dist-tags': { latest: '1.0.0', next: '2.0.0-rc.1' },
    versions: Object.fromEntries(['1.0.0', '2.0.0-rc.1'].map((v) => [v, { name: 'live', version: v, dist: { tarball: `https://files.example/live-${v}.tgz` } }])),
  });
  const registry = createServer((req, res) => {
    if (req.url === '/live') res.writeHead(200, { 'content-type': 'application/json', etag: '"1"' }).end(doc);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => registry.listen(0, '127.0.0.1', r));
  manifest.rules.push({ type: 'npm-v1', domain: 'npm.example.com', 'package-id': 'l', 'package-name': 'live', registry: `http://127.0.0.1:${(registry.address() as AddressInfo).port}` });
  const gw = await startGateway({ manifest, args: ['--upstream', 'ghcr.io=http://127.0.0.1:1', ...args] });
  try {
    await fn(gw);
  } finally {
    await gw.stop();
    registry.close();
  }
}

// Requests the rules answer.
const VALID: readonly (readonly [string, string])[] = [
  ['dl.example.com', '/tool-1.4.0.tgz'],
  ['DL.example.com:8080', '/install.sh'],
  ['dl.example.com', '/releases/linux/1.2.3'],
  ['dl.example.com', '/telemetry'],
  ['www.example.com', '/docs/a'],
  ['cr.example.com', '/v2/'],
  ['cr.example.com', '/v2/org/app/manifests/1.0'],
  ['cr.example.com', '/v2/org/app/blobs/sha256:0123'],
  ['py.example.com', '/simple/'],
  ['py.example.com', '/simple/tool/'],
  ['npm.example.com', '/tool'],
  ['npm.example.com', '/tool/-/tool-1.0.0.tgz'],
  ['npm.example.com', '/live'],
  ['npm.example.com', '/live/-/live-1.0.0.tgz'],
  // Versions and tags, and names every object has.
  ...['1.0.0', 'next', 'constructor', '__proto__', 'toString', 'valueOf'].map((v) => ['npm.example.com', `/live/${v}`] as const),
];

test('random requests over every rule type: no server error, a line for each answer, still serving', { timeout: 120_000 }, () =>
  withEveryRuleType([], [], async (gw) => {
    const rnd = seededRandom(20261127);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const safe = [...'abcxyz/%2F%41%zz..?&=:@!$()*+,;~-_0123456789AZ.whl.tgz'];
    const odd = [...'#{}[]\'"<>\\^`|\u00e9\u2603\x7f\x00\t '];
    const text = (max: number) => Array.from({ length: Math.floor(rnd() * max) }, () => (rnd() < 0.97 ? pick(safe) : pick(odd))).join('');
    // Requests the rules answer, as they are or with a tail or a query added, and anything else.
    const hosts = ['dl.example.com', 'cr.example.com', 'py.example.com', 'npm.example.com', 'unknown.test', '', '[::1]', 'a'.repeat(300), 'a b'];
    const paths = ['/', '/v2/', '/v2/org/app/manifests/', '/simple/', '/tool/', '/-/', '/a/../', '//', '*', 'http://x/'];
    const methods = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'BREW', 'get'];
    const one = async (): Promise<{ raw: string; answer: string }> => {
      const method = pick(methods);
      const [host, path] = rnd() < 0.6 ? pick(VALID) : [pick(hosts), pick(paths) + text(30)];
      const target = (rnd() < 0.3 ? path + text(10) : path) + (rnd() < 0.3 ? `?${text(20)}` : '');
      const fields = [
        rnd() < 0.3 ? `user-agent: ${pick(['docker/27.3.1 go/go1.22.7', 'pip/24.0', 'npm/10.8.2', text(40)])}` : '',
        rnd() < 0.2 ? `accept: ${pick(['application/vnd.pypi.simple.v1+json', 'text/html', 'application/vnd.npm.install-v1+json', text(20)])}` : '',
        rnd() < 0.2 ? `accept-encoding: ${pick(['gzip, deflate', 'gzip;q=0', '*', 'br;q=1, gzip;q=0.5', 'gzip;q=abc', text(20)])}` : '',
        rnd() < 0.1 ? `if-none-match: ${text(20)}` : '',
        rnd() < 0.1 ? `x-forwarded-for: ${text(20)}` : '',
        rnd() < 0.1 ? `authorization: ${text(20)}` : '',
      ].filter((f) => f !== '');
      const body = method === 'POST' && rnd() < 0.7 ? text(200) : '';
      if (body !== '') fields.push(`content-length: ${Buffer.byteLength(body)}`);
      const raw = [`${method} ${target} HTTP/1.1`, `host: ${host}`, ...fields, 'connection: close', '', body].join('\r\n');
      return { raw, answer: await rawRequest(gw.port, raw) };
    };
    const ids: string[] = [];
    const statuses = new Map<number, number>();
    for (let sent = 0; sent < REQUESTS; sent += AT_ONCE) {
      for (const { raw, answer } of await Promise.all(Array.from({ length: AT_ONCE }, one))) {
        const status = statusOf(answer);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        assert.ok((status >= 200 && status < 500) || status === 502, `${status} for ${JSON.stringify(raw)}`);
        // Every answer names its request, those the HTTP parser refused included.
        const id = /\r\nx-request-id: (\S+)/i.exec(answer)?.[1];
        assert.ok(id !== undefined, `no request id for ${JSON.stringify(raw)}: ${JSON.stringify(answer.slice(0, 200))}`);
        ids.push(id);
      }
    }
    // Each answer's request has its line (with the status it was sent).
    for (const id of ids) assert.ok((await gw.linesFor(id)).length >= 1, id);
    // The draw reaches the rules, not only the parser's refusals.
    for (const status of [200, 307, 400, 404, 502]) assert.ok((statuses.get(status) ?? 0) > 0, `no ${status} among ${JSON.stringify([...statuses])}`);
    assert.equal(statusOf(await rawRequest(gw.port, 'GET /tool-1.4.0.tgz HTTP/1.1\r\nhost: dl.example.com\r\nconnection: close\r\n\r\n')), 307);
    assert.deepEqual(gw.logs.filter((l) => typeof l.level === 'number' && l.level >= 50), []);
  }),
);

test('random requests pipelined over every rule type: each answered in order, whole, until an answer closes the connection', { timeout: 120_000 }, () =>
  // 400 projects: a root index over 8 KiB, sent as bytes. A small body limit: some bodies get 413.
  withEveryRuleType(['--max-body-size', '300'], Array.from({ length: 400 }, (_, i) => ({
    type: 'python-v1', domain: 'py.example.com', 'package-id': 'p', 'package-name': `project-${i}`, 'file-name': `project_${i}-1.0.tar.gz`, version: '1.0', 'backend-url': `https://files.example/project_${i}-1.0.tar.gz`,
  })), async (gw) => {
    const rnd = seededRandom(20261128);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
    const draw = (last: boolean) => {
      const method = pick(['GET', 'GET', 'GET', 'HEAD', 'POST', 'PUT', 'OPTIONS']);
      const [host, path] = pick(VALID);
      const fields = [
        rnd() < 0.3 ? `accept: ${pick(['application/vnd.pypi.simple.v1+json', 'text/html', 'application/vnd.npm.install-v1+json'])}` : '',
        rnd() < 0.3 ? `accept-encoding: ${pick(['gzip', 'gzip;q=0', '*'])}` : '',
        rnd() < 0.15 ? 'expect: 100-continue' : '',
      ].filter((f) => f !== '');
      let body = '';
      if (method === 'POST' || method === 'PUT') {
        body = pick(['{"a":1}', '{"a":[1,2]}{"b":2}', 'not json', 'x'.repeat(500), '']);
        if (rnd() < 0.3) {
          fields.push('transfer-encoding: chunked');
          body = `${body === '' ? '' : `${body.length.toString(16)}\r\n${body}\r\n`}0\r\n\r\n`;
        } else fields.push(`content-length: ${body.length}`);
      }
      if (last) fields.push('connection: close');
      return { method, path, raw: [`${method} ${path} HTTP/1.1`, `host: ${host}`, ...fields, '', ''].join('\r\n') + body };
    };
    const problems: string[] = [];
    let answered = 0;
    const connection = async (k: number) => {
      const count = 1 + Math.floor(rnd() * 8);
      const requests = Array.from({ length: count }, (_, i) => draw(i === count - 1));
      const bytes = await new Promise<Buffer | null>((resolve) => {
        const socket = connect(gw.port, '127.0.0.1', () => socket.write(requests.map((r) => r.raw).join('')));
        const chunks: Buffer[] = [];
        socket.on('data', (c) => chunks.push(c));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(Buffer.concat(chunks)));
        setTimeout(() => resolve(null), 8000).unref();
      });
      if (bytes === null) return void problems.push(`connection ${k}: still open after 8 s`);
      // Answers in order: HEAD, 304 and interim answers have no body.
      let at = 0;
      for (const [i, r] of requests.entries()) {
        let headEnd = bytes.indexOf('\r\n\r\n', at);
        while (headEnd >= 0 && bytes.subarray(at, at + 12).toString('latin1') === 'HTTP/1.1 100') {
          at = headEnd + 4;
          headEnd = bytes.indexOf('\r\n\r\n', at);
        }
        if (headEnd < 0) return void problems.push(`connection ${k}: ${i} of ${requests.length} answers, then ${JSON.stringify(bytes.subarray(at, at + 100).toString('latin1'))}`);
        const head = bytes.subarray(at, headEnd + 2).toString('latin1');
        const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1]);
        if (!(status >= 200 && status < 500) && status !== 502) return void problems.push(`connection ${k}: answer ${i} begins ${JSON.stringify(head.slice(0, 100))}`);
        at = headEnd + 4;
        if (r.method !== 'HEAD' && status !== 304) {
          if (/\r\ntransfer-encoding: chunked\r\n/i.test(head)) {
            for (let size = -1; size !== 0; ) {
              const lineEnd = bytes.indexOf('\r\n', at);
              size = parseInt(bytes.subarray(at, lineEnd).toString('latin1'), 16);
              at = lineEnd + 2 + size + 2;
            }
          } else at += Number(/\r\ncontent-length: (\d+)\r\n/i.exec(head)?.[1] ?? 0);
        }
        // The answer is this request's: its line names the request's path.
        const [line] = await gw.linesFor(/\r\nx-request-id: (\S+)\r\n/i.exec(head)?.[1] ?? '');
        if (line?.path !== r.path) problems.push(`connection ${k}: answer ${i} is for ${line?.path}, not ${r.path}`);
        answered++;
        if (/\r\nconnection: close\r\n/i.test(head)) break;
      }
      if (at !== bytes.length) problems.push(`connection ${k}: ${bytes.length - at} bytes after the last answer: ${JSON.stringify(bytes.subarray(at, at + 100).toString('latin1'))}`);
    };
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < 300) await connection(next++);
    }));
    assert.deepEqual(problems, []);
    assert.ok(answered > 1000, `${answered} answers`);
    assert.deepEqual(gw.logs.filter((l) => typeof l.level === 'number' && l.level >= 50), []);
  }),
);
