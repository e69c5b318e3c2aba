// SPEC §10: validate, start-up with an invalid manifest, flags and GATEWAY_* variables.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startGateway, tempDir } from './helpers/gateway-process.ts';
import { request, statusOf } from './helpers/http-client.ts';

const CLI = new URL('../src/cli.ts', import.meta.url).pathname;
const EXAMPLE = new URL('../config/manifest.json', import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;

function run(args: string[], env: Record<string, string> = {}) {
  // SIGKILL: a process that spins may not heed SIGTERM.
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000, killSignal: 'SIGKILL' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function writeManifest(value: unknown): string {
  const file = join(tempDir(), 'm.json');
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}

const BAD = {
  rules: [
    { type: 'file-v1', domain: 'a.test', 'package-id': 'ok', 'incoming-path': '/ok', 'outgoing-url': 'https://x.example/' },
    { type: 'file-v1', domain: 'a.test', 'package-id': 'p', 'incoming-path': '/a/{v}', 'outgoing-url': 'https://x.example/{w}' },
    { type: 'file-v1', domain: 'a.test', 'package-id': 'p', 'incoming-path': '/a/{v', 'outgoing-url': null },
    { type: 'file-v2', domain: 'a.test', 'incoming-path': '^(a)\\1$', 'outgoing-url': null },
    { type: 'file-v2', domain: 'a.test', 'incoming-path': '^(?<a>x$', 'outgoing-url': null },
    { type: 'docker-v9', domain: 'a.test' },
    { type: 'telemetry-v1', domain: 'a.test', 'incoming-path': '/t' },
    { type: 'pixel-v1', domain: 'bad domain', 'package-id': 'x' },
    { type: 'file-v1', domain: 'a.test', 'package-id': 'p', 'incoming-path': '/{+x}', 'outgoing-url': '/relative/{+x}' },
  ],
};

test('validate: the example manifest is valid', () => {
  const r = run(['validate', EXAMPLE]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /ok \(\d+ rules/);
});

test('validate: a manifest from a pipe (no size known in advance)', () => {
  // Through sh: node's own `input` is a socket, which /dev/stdin cannot open.
  const r = spawnSync('sh', ['-c', 'cat "$0" | "$1" "$2" validate /dev/stdin', EXAMPLE, process.execPath, CLI], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /\/dev\/stdin: ok \([1-9]\d* rules/);
});

test('validate: a manifest saved with a UTF-8 byte order mark (as Windows editors do) is read as without it', () => {
  const r = run(['validate', writeManifest('\ufeff' + readFileSync(EXAMPLE, 'utf8'))]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /: ok \(\d+ rules/);
  const bad = run(['validate', writeManifest('\ufeff' + JSON.stringify(BAD))]);
  assert.equal(bad.code, 1);
  assert.match(bad.stdout, /\/rules\/1\/outgoing-url: variable "w" is not bound/);
});

test('validate: each problem is printed with its JSON pointer, exit 1', () => {
  const r = run(['validate', writeManifest(BAD)]);
  assert.equal(r.code, 1);
  const lines = r.stdout.trim().split('\n');
  const pointers = lines.filter((l) => l.startsWith('/rules')).map((l) => l.slice(0, l.indexOf(':')));
  assert.deepEqual(pointers.sort(), [
    '/rules/1/outgoing-url',
    '/rules/2/incoming-path',
    '/rules/3/incoming-path',
    '/rules/4/incoming-path',
    '/rules/5/type',
    '/rules/6',
    '/rules/7/domain',
    '/rules/8/outgoing-url',
  ].sort());
  assert.match(r.stdout, /\/rules\/1\/outgoing-url: variable "w" is not bound/);
  assert.match(r.stdout, /\/rules\/3\/incoming-path: .*linear time/);
  assert.match(r.stdout, /\/rules\/6: missing required field "package-id"/);
});

test('validate: rules that are not objects are problems, not a crash', () => {
  const r = run(['validate', writeManifest('{"rules": [null, 5, "x", [], {"type": "file-v1"}]}')]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(r.stderr, '');
  for (const i of [0, 1, 2, 3]) assert.match(r.stdout, new RegExp(`^/rules/${i}: must be object$`, 'm'));
  assert.match(r.stdout, /^\/rules\/4: missing required field "domain"$/m);
});

test('validate: not JSON, or missing file', () => {
  const r = run(['validate', writeManifest('{"rules": [')]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^\/: not valid JSON/m);
  const missing = run(['validate', '/nonexistent/manifest.json']);
  assert.equal(missing.code, 1);
  assert.match(missing.stdout, /cannot read/);
});

test('validate: unknown fields are warnings, Scarf fields are accepted; --strict counts warnings as problems', () => {
  const manifest = writeManifest({
    rules: [{ type: 'file-v1', domain: 'a.test', 'package-id': 'p', owner: 'o', 'package-name': 'n', 'incoming-path': '/x', 'outgoing-url': 'https://x.example/', 'outgoing_url': 'typo' }],
  });
  const r = run(['validate', manifest]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /warning: \/rules\/0\/outgoing_url: unknown field/);
  assert.doesNotMatch(r.stdout, /owner|package-name/);
  const strict = run(['validate', '--strict', manifest]);
  assert.equal(strict.code, 1);
  assert.match(strict.stdout, /warning: \/rules\/0\/outgoing_url: unknown field/);
  assert.match(strict.stdout, /: 1 warning, which --strict counts as problems$/m);
  // Scarf's own fields are no warning: a Scarf manifest passes --strict.
  const scarf = run(['validate', '--strict', writeManifest({ rules: [{ type: 'file-v1', domain: 'a.test', 'package-id': 'p', owner: 'o', 'incoming-path': '/x', 'outgoing-url': null }] })]);
  assert.equal(scarf.code, 0, scarf.stdout);
});

test('validate: a Python digest of the wrong length for its type is a warning (the manifest still loads, as under Scarf)', () => {
  const py = (file: string, hash: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    type: 'python-v1', domain: 'py.test', 'package-id': 'p', 'package-name': 'tool', version: '1', 'file-name': file, 'backend-url': `https://x.example/${file}`, 'hash-value': hash, ...extra,
  });
  const r = run(['validate', writeManifest({
    rules: [
      py('tool-1.tar.gz', { type: 'sha256', hash: 'ab'.repeat(32) }, { 'core-metadata': { type: 'sha256', hash: 'ab'.repeat(31) } }),
      py('tool-1-py3-none-any.whl', { type: 'md5', hash: 'AB'.repeat(16) }),
      py('tool-1.zip', { type: 'sha512', hash: 'ab'.repeat(32) }),
    ],
  })]);
  assert.equal(r.code, 0, r.stdout);
  assert.deepEqual(r.stdout.split('\n').filter((l) => l.startsWith('warning:')), [
    'warning: /rules/0/core-metadata/hash: a sha256 digest has 64 hex digits, this one 62: clients will find that the file does not match it, and refuse it',
    'warning: /rules/2/hash-value/hash: a sha512 digest has 128 hex digits, this one 64: clients will find that the file does not match it, and refuse it',
  ]);
});

test('validate: a value that does not fit its field is reported with the value and what the field takes; a file-v1 path that cannot match, a file-v2 expression with a character no request path holds or anchored before text other than /, a docker-v2 pattern with upper case, a telemetry path with a query, or a Docker Hub image without its library/, is a warning', () => {
  const r = run(['validate', writeManifest({
    rules: [
      { type: 'docker-v1', domain: 'a.test', 'package-id': 'a', 'repository-name': 'org/a', registry: 'https://ghcr.io' },
      { type: 'npm-v1', domain: 'b.test', 'package-id': 'b', 'package-name': 'Tool' },
    ],
  })]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^\/rules\/0\/registry: got "https:\/\/ghcr\.io"; expected: Backend registry host, without scheme or path, /m);
  assert.match(r.stdout, /^\/rules\/1\/package-name: got "Tool"; expected: npm package name, in lower case: tool or @scope\/tool\.$/m);
  const file = (path: string) => ({ type: 'file-v1', domain: 'c.test', 'package-id': 'c', 'incoming-path': path, 'outgoing-url': null });
  const hub = (name: string, registry = 'docker.io') => ({ type: 'docker-v1', domain: 'get.test', 'package-id': 'd', 'repository-name': name, registry });
  const warned = run(['validate', writeManifest({
    rules: [
      file('tool.tgz'), file('{v}.tgz'), file('{+path}'), file('/ok'), hub('nginx'), hub('library/nginx'), hub('tool', 'ghcr.io'),
      { type: 'docker-v2', domain: 'get.test', 'rule-id': 'r', pattern: '{nginx,redis}', registry: 'docker.io' },
      { type: 'docker-v2', domain: 'get.test', 'rule-id': 's', pattern: 'library/*', registry: 'docker.io' },
      { type: 'file-v2', domain: 'c.test', 'package-id': 'c', 'incoming-path': '^/дир/(?<v>.+)$', 'outgoing-url': null },
      { type: 'file-v2', domain: 'c.test', 'package-id': 'c', 'incoming-path': '^tool/(?<v>.+)$', 'outgoing-url': null },
      { type: 'file-v2', domain: 'c.test', 'package-id': 'c', 'incoming-path': '^(?:/a|/b)/(?<v>.+)$', 'outgoing-url': null },
      { type: 'docker-v2', domain: 'get.test', 'rule-id': 'u', pattern: 'Org/\\*{a,B}', registry: 'ghcr.io' },
      { type: 'telemetry-v1', domain: 'c.test', 'package-id': 'c', 'incoming-path': '/t?v=1' },
    ],
  })]);
  assert.equal(warned.code, 0);
  assert.deepEqual(warned.stdout.split('\n').filter((l) => l.startsWith('warning:')), [
    'warning: /rules/0/incoming-path: never matches: a request path starts with "/", and "tool.tgz" does not',
    'warning: /rules/1/incoming-path: never matches: a request path starts with "/", and "{v}.tgz" does not',
    // Docker Hub keeps official images under library/.
    'warning: /rules/4/repository-name: Docker Hub has no image "nginx": official images are under library/; write "library/nginx" and pull get.test/library/nginx',
    'warning: /rules/7/pattern: Docker Hub has no image of one segment, which this pattern matches: official images are under library/; write "library/{nginx,redis}" and pull get.test/library/<image>',
    // A file-v2 expression is searched in the path as sent.
    'warning: /rules/9/incoming-path: holds "д", which a request path never does: clients send it percent-encoded (%D0%B4), and the expression is searched in the path as sent',
    'warning: /rules/10/incoming-path: never matches: a request path starts with "/", and "^tool/(?<v>.+)$" requires it to start with "t"',
    // Repository names are in lower case (the Distribution API's grammar).
    'warning: /rules/12/pattern: "O" never serves: image names are in lower case, and a pull of one with "O" gets 400 NAME_INVALID',
    'warning: /rules/13/incoming-path: never matches: it is compared with a request\'s path, without its query, and "/t?v=1" holds a "?"',
  ]);
});

test('an invalid manifest at start-up: exit non-zero with the same messages', () => {
  const r = run(['--manifest', writeManifest(BAD), '--port', '0', '--admin-port', '-1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\/rules\/1\/outgoing-url: variable "w" is not bound/);
  assert.match(r.stderr, /invalid manifest, not starting/);
});

for (const [which, workers] of [['public', 1], ['public', 2], ['admin', 1], ['admin', 2]] as const) {
  test(`the ${which} port in use: exit 1 with the reason (${workers === 1 ? 'one process' : 'two workers, none forked again'})`, async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const port = (taken.address() as AddressInfo).port;
      const ports = which === 'public' ? ['--port', String(port), '--admin-port', '-1'] : ['--port', '0', '--admin-port', String(port)];
      const r = run(['--manifest', EXAMPLE, ...ports, '--workers', String(workers)]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`cannot start: .*EADDRINUSE.*:${port}`));
      assert.doesNotMatch(r.stderr, /worker died/);
    } finally {
      taken.close();
    }
  });
}

test('an --analytics directory that cannot be made: exit 1 at once with the reason, also where node\'s own recursive mkdir never returns (/proc)', () => {
  for (const [path, message] of [
    ['/proc/gateway-test/feed.jsonl', /cannot start: ENOENT: .*mkdir '\/proc\/gateway-test'/],
    [join(EXAMPLE, 'feed.jsonl'), /cannot start: ENOTDIR: .*manifest\.json/],
  ] as const) {
    const r = run(['--manifest', EXAMPLE, '--port', '0', '--admin-port', '-1', '--analytics', path]);
    assert.equal(r.code, 1, `${path}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});

test('--help explains every flag', () => {
  const r = run(['--help']);
  assert.equal(r.code, 0);
  for (const flag of ['--manifest', '--host', '--port', '--admin-port', '--trust-proxy', '--upstream', '--anonymize-ip',
    '--max-url-length', '--max-header-size', '--max-body-size', '--max-body-events', '--headers-timeout', '--request-timeout',
    '--keep-alive-timeout', '--drain-timeout', '--stop-delay', '--analytics', '--proxy-buffer-memory', '--npm-cache-memory', '--send-timeout', '--tls-cert', '--tls-key', '--log-level']) {
    assert.match(r.stdout, new RegExp(`${flag}\\b`), flag);
  }
});

test('a malformed --upstream is refused', () => {
  const r = run(['--upstream', 'nonsense', '--port', '0', '--admin-port', '-1']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /expected HOST=URL/);
});

test('a numeric flag out of its range or not a number, or a log level pino does not have, is refused before the gateway starts', () => {
  const refused: [string[], Record<string, string>, RegExp][] = [
    [['--port', 'abc'], {}, /--port: expected a whole number from 0 to 65535/],
    // Past 2^31 - 1 ms node fires a timer after 1 ms: every proxied request would time out while connecting.
    [['--upstream-connect-timeout', '3000000000'], {}, /--upstream-connect-timeout: expected a number from 1 to 2147483647, got 3000000000/],
    [['--upstream-timeout', 'abc'], {}, /--upstream-timeout: expected a number from 1/],
    [['--workers', '0'], {}, /--workers: expected a whole number from 1/],
    [['--max-body-events', '1.5'], {}, /--max-body-events: expected a whole number/],
    [['--proxy-buffer-memory', '-1'], {}, /--proxy-buffer-memory: expected a number from 0/],
    [['--send-timeout', '0'], {}, /--send-timeout: expected a number from 1/],
    // node would refuse it at start-up, naming its own option.
    [['--headers-timeout', '40000'], {}, /--headers-timeout \(40000\) must not be longer than --request-timeout \(30000\)/],
    [[], { GATEWAY_UPSTREAM_CONNECT_TIMEOUT: 'soon' }, /--upstream-connect-timeout: expected a number from 1/],
    [['--log-level', 'loud'], {}, /--log-level.*Given: "loud", Choices: "trace", "debug", "info", "warn", "error", "fatal", "silent"/s],
  ];
  for (const [args, env, message] of refused) {
    const r = run([...args, '--manifest', EXAMPLE], env);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, message);
  }
});

test('flags come from GATEWAY_* environment variables', async () => {
  const gw = await startGateway({
    manifest: { rules: [{ type: 'file-v1', domain: 'env.test', 'package-id': 'p', 'incoming-path': '/{+p}', 'outgoing-url': 'https://x.example/{+p}' }] },
    env: { GATEWAY_MAX_URL_LENGTH: '100', GATEWAY_ANONYMIZE_IP: 'true' },
  });
  try {
    const long = await request(gw.port, { path: '/' + 'a'.repeat(150), host: 'env.test' });
    assert.equal(long.status, 414);
    const ok = await request(gw.port, { path: '/short', host: 'env.test' });
    assert.equal(ok.status, 307);
    const [line] = await gw.linesFor(ok.headers['x-request-id'] as string);
    assert.equal(line.client.ip, '127.0.0.0');
  } finally {
    await gw.stop();
  }
});

test('a repeatable flag takes several values from its variable: addresses, upstreams, user agents (which hold spaces)', async (t) => {
  // Two registries, each answering with its own name.
  const registries = await Promise.all(['a', 'b'].map(async (name) => {
    const server = createHttpServer((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ from: name, path: req.url })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    return server;
  }));
  const [a, b] = registries.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  const gw = await startGateway({
    manifest: {
      rules: [
        { type: 'docker-v1', domain: 'a.test', 'package-id': 'a', 'repository-name': 'org/a', registry: 'a.registry' },
        { type: 'docker-v1', domain: 'b.test', 'package-id': 'b', 'repository-name': 'org/b', registry: 'b.registry' },
      ],
    },
    env: {
      GATEWAY_TRUST_PROXY: '10.0.0.0/8 loopback',
      GATEWAY_UPSTREAM: `a.registry=${a}\n b.registry=${b}`,
      GATEWAY_REDIRECT_AGENT: 'prefix:foo/ equals:Watchtower (Docker)',
    },
  });
  t.after(() => gw.stop());
  const pull = async (host: string, userAgent: string) => {
    const res = await request(gw.port, { path: `/v2/org/${host[0]}/manifests/1`, host, headers: { 'user-agent': userAgent, 'x-forwarded-for': '203.0.113.9' } });
    const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
    return { res, line };
  };
  // Each upstream serves its own registry.
  for (const host of ['a.test', 'b.test']) {
    const { res, line } = await pull(host, 'docker/27.3.1');
    assert.equal(res.status, 200, host);
    assert.deepEqual(JSON.parse(res.text), { from: host[0], path: `/v2/org/${host[0]}/manifests/1` });
    // Loopback is trusted as the variable's second value.
    assert.equal(line.client.ip, '203.0.113.9');
  }
  // The two user agents replace the default list.
  for (const ua of ['foo/1.0', 'Watchtower (Docker)']) {
    const { res } = await pull('a.test', ua);
    assert.equal(res.status, 307, ua);
    assert.equal(res.headers.location, 'https://a.registry/v2/org/a/manifests/1');
  }
  // Certificates and keys are counted in pairs as they are on the command line.
  const pairs = run(['--manifest', EXAMPLE, '--port', '0', '--admin-port', '-1'], { GATEWAY_TLS_CERT: '/etc/a.pem /etc/b.pem', GATEWAY_TLS_KEY: '/etc/a.key' });
  assert.equal(pairs.code, 1);
  assert.match(pairs.stderr, /in pairs: 2 certificate\(s\), 1 key\(s\)/);
});

test('GATEWAY_* variables: validate reads none; one that names no flag (Kubernetes service links) is ignored with a warning; a bad value names its variable; an empty one is not set', async () => {
  // The variables Kubernetes sets in every pod of a namespace with a Service named "gateway".
  const serviceLinks = { GATEWAY_SERVICE_HOST: '10.96.0.12', GATEWAY_SERVICE_PORT: '80', GATEWAY_PORT: 'tcp://10.96.0.12:80', GATEWAY_PORT_80_TCP_ADDR: '10.96.0.12' };
  const checked = run(['validate', EXAMPLE], { ...serviceLinks, GATEWAY_TRUST_PROXY: 'loopback' });
  assert.equal(checked.code, 0, checked.stderr);
  assert.match(checked.stdout, /: ok \(/);

  const refused = run(['--manifest', EXAMPLE, '--admin-port', '-1'], serviceLinks);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /--port: expected a whole number from 0 to 65535, got something else \(from GATEWAY_PORT="tcp:\/\/10\.96\.0\.12:80"\)/);
  const notBoolean = run(['--manifest', EXAMPLE, '--port', '0', '--admin-port', '-1'], { GATEWAY_ANONYMIZE_IP: 'maybe' });
  assert.equal(notBoolean.code, 1);
  assert.match(notBoolean.stderr, /GATEWAY_ANONYMIZE_IP="maybe": expected true or false/);
  const notLevel = run(['--manifest', EXAMPLE, '--port', '0', '--admin-port', '-1'], { GATEWAY_LOG_LEVEL: 'loud' });
  assert.equal(notLevel.code, 1);
  assert.match(notLevel.stderr, /GATEWAY_LOG_LEVEL="loud": expected one of trace, debug, info, warn, error, fatal, silent for --log-level/);

  // The command line's --port wins over the Service's GATEWAY_PORT.
  const gw = await startGateway({
    manifest: { rules: [{ type: 'file-v1', domain: 'env.test', 'package-id': 'p', 'incoming-path': '/{+p}', 'outgoing-url': 'https://x.example/{+p}' }] },
    env: { ...serviceLinks, GATEWAY_ANONYMIZE_IP: 'yes', GATEWAY_ANALYTICS: '', GATEWAY_MAX_URL_LENGTH: ' ' },
  });
  try {
    const warning = await gw.waitForLog((l) => l.msg === 'GATEWAY_* variables that name no flag are ignored');
    assert.deepEqual(warning.variables, ['GATEWAY_PORT_80_TCP_ADDR', 'GATEWAY_SERVICE_HOST', 'GATEWAY_SERVICE_PORT']);
    // Empty: the lines go to stdout, and URLs are as long as by default.
    const ok = await request(gw.port, { path: '/' + 'a'.repeat(5000), host: 'env.test' });
    assert.equal(ok.status, 307);
    const [line] = await gw.linesFor(ok.headers['x-request-id'] as string);
    assert.equal(line.client.ip, '127.0.0.0');
  } finally {
    await gw.stop();
  }
});

test('--headers-timeout holds to within a fraction of a second; a connection that never sent a byte is closed without an answer or a line', { timeout: 30_000 }, async () => {
  const gw = await startGateway({ manifest: { rules: [] }, args: ['--headers-timeout', '500', '--request-timeout', '1000'] });
  /** Sends `raw`, then waits: what came back, and after how long the connection closed. */
  const wait = (raw: string) =>
    new Promise<{ text: string; ms: number }>((resolve) => {
      const started = Date.now();
      const socket = connect(gw.port, '127.0.0.1');
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => resolve({ text, ms: Date.now() - started }));
      if (raw !== '') socket.write(raw);
    });
  try {
    const [slow, idle] = await Promise.all([wait('GET /f HTTP/1.1\r\nHost: a.test\r\nX-Slow: 1'), wait('')]);
    // node looked every 30 s: up to 30 s more.
    assert.ok(slow.ms >= 500 && slow.ms < 3000, `a slow head was closed after ${slow.ms} ms`);
    assert.equal(statusOf(slow.text), 408);
    assert.ok(idle.ms >= 500 && idle.ms < 3000, `an idle connection was closed after ${idle.ms} ms`);
    assert.equal(idle.text, '');
    const id = /^x-request-id: (\S+)\r$/im.exec(slow.text)![1];
    await gw.linesFor(id);
    assert.deepEqual(gw.lines.map((l) => `${l.status} ${l.requestId === id}`), ['408 true']);
  } finally {
    await gw.stop();
  }
});

test('admin port: /healthz and /readyz', async () => {
  const gw = await startGateway({ manifest: { rules: [] } });
  try {
    assert.equal((await request(gw.adminPort, { path: '/healthz' })).status, 200);
    const ready = await request(gw.adminPort, { path: '/readyz' });
    assert.equal(ready.status, 200);
    assert.equal((await request(gw.adminPort, { path: '/nope' })).status, 404);
    assert.equal((await request(gw.adminPort, { path: '/healthz', method: 'HEAD' })).status, 200);
    for (const path of ['/healthz', '/readyz', '/metrics']) {
      const posted = await request(gw.adminPort, { path, method: 'POST', body: 'x' });
      assert.equal(posted.status, 405, path);
      assert.equal(posted.headers.allow, 'GET, HEAD');
    }
    // The admin endpoints are not on the public port.
    assert.equal((await request(gw.port, { path: '/healthz' })).status, 404);
  } finally {
    await gw.stop();
  }
});

test('npm start serves the example manifest: a file, a Docker image and a Python package, as the README shows', async () => {
  const gw = await startGateway({ manifest: require_example() });
  try {
    const res = await request(gw.port, { path: '/tool-1.4.0.tgz', host: 'dl.example.com' });
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, 'https://github.com/example/tool/releases/download/v1.4.0/tool-1.4.0.tgz');
    const pull = await request(gw.port, { path: '/v2/example/tool/manifests/1.4.0', host: 'get.example.com', headers: { 'user-agent': 'docker/27.3.1' } });
    assert.equal(pull.status, 307);
    assert.equal(pull.headers.location, 'https://ghcr.io/v2/example/tool/manifests/1.4.0');
    const page = await request(gw.port, { path: '/simple/example-tool/', host: 'py.example.com' });
    assert.equal(page.status, 200);
    assert.match(page.text, /<a href="\/simple\/example-tool\/example_tool-1\.4\.0-py3-none-any\.whl#sha256=5bd0a2a6/);
  } finally {
    await gw.stop();
  }
});

test("README's other commands run as written, with the machine's own node on PATH and not the pinned one", () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const block = /Other commands[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme)![1];
  // Those that end (the serving one stays up), run as a new user has them: without node_modules/.bin on PATH.
  const commands = block.split('\n').filter((l) => l.startsWith('npm start --silent'));
  assert.equal(commands.length, 3);
  const PATH = process.env.PATH!.split(':').filter((d) => !d.includes('node_modules')).join(':');
  const sh = (line: string) =>
    spawnSync('sh', ['-c', line.replace(/#.*$/, '').replace('my-manifest.json', EXAMPLE)], { cwd: ROOT, env: { ...process.env, PATH }, encoding: 'utf8', timeout: 60_000 });
  // The example has no warning, so --strict passes it too.
  for (const command of commands.slice(0, 2)) {
    const validate = sh(command);
    assert.equal(validate.status, 0, validate.stderr);
    assert.match(validate.stdout, /^\S+manifest\.json: ok \(\d+ rules, \d+ domains\)$/m);
  }
  const help = sh(commands[2]);
  assert.equal(help.status, 0, help.stderr);
  assert.match(help.stdout, /scarf-gateway validate FILE/);
});

function require_example(): string {
  return spawnSync('cat', [EXAMPLE], { encoding: 'utf8' }).stdout;
}
