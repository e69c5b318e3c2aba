// Gateway-held registry credentials (SPEC §4, README "Backends that need a
// login") against a scripted registry and token realm on 127.0.0.1: the
// realm is an upstream like the registry (its failures give 502/504 and a
// client leaving while it answers gives 499), and requests that need the
// same token while it is fetched share one fetch. The flow against a real
// registry and token server is in docker-e2e.test.ts.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCredentials } from '../src/proxy/registry-auth.ts';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';

const D = 'cr.test';
const REG = 'registry.test';
const BASIC = Buffer.from('bob:hunter2').toString('base64');
const TOKEN = 'tok-granted';

/** What the realm does, by the repository the token is for: answer when `release` is called, or never. */
type Realm = (req: IncomingMessage, res: ServerResponse) => void;
const realms = new Map<string, Realm>();
/** Token requests seen, by repository: their Authorization. */
const tokenRequests = new Map<string, string[]>();
/** Challenges the registry sent, by repository. */
const challenged = new Map<string, number>();
let upstream: Server;
let port: number;
let gw: GatewayProcess;
let authFile: string;

const REPOS = ['shared', 'silent', 'leave', 'movedbasic', 'movedbearer', 'rotated', 'refused', 'basicrefused'];

/** Another origin the registry redirects to: it challenges whoever comes, and records what they bring. */
let elsewhere: Server;
let elsewherePort: number;
const elsewhereSaw: { path: string; authorization: string | undefined }[] = [];

before(async () => {
  upstream = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const token = /^\/token\/(\w+)$/.exec(url.pathname);
    if (token !== null) {
      const repo = token[1];
      tokenRequests.set(repo, [...(tokenRequests.get(repo) ?? []), req.headers.authorization ?? '']);
      return realms.get(repo)!(req, res);
    }
    const pull = /^\/v2\/org\/(\w+)\/manifests\//.exec(url.pathname);
    if (pull === null) return void res.writeHead(404).end();
    // Moved to another origin, which challenges the gateway in turn.
    if (pull[1].startsWith('moved')) return void res.writeHead(307, { location: `http://127.0.0.1:${elsewherePort}${url.pathname}` }).end();
    // A registry that takes Basic credentials, and refuses the gateway's.
    if (pull[1] === 'basicrefused') return void res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"' }).end('{"errors":[]}');
    if (req.headers.authorization === `Bearer ${TOKEN}`) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"manifest":true}');
    // The realm of repository "unreachable" is a port nobody listens on.
    const realm = pull[1] === 'unreachable' ? 'http://127.0.0.1:1/token' : `http://127.0.0.1:${port}/token/${pull[1]}`;
    challenged.set(pull[1], (challenged.get(pull[1]) ?? 0) + 1);
    res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}",service="${REG}",scope="repository:org/${pull[1]}:pull"` }).end('{"errors":[]}');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  port = (upstream.address() as AddressInfo).port;
  elsewhere = createServer((req, res) => {
    elsewhereSaw.push({ path: req.url ?? '', authorization: req.headers.authorization });
    const challenge = (req.url ?? '').includes('movedbasic') ? 'Basic realm="elsewhere"' : `Bearer realm="http://127.0.0.1:${elsewherePort}/token",service="elsewhere",scope="repository:org/movedbearer:pull"`;
    res.writeHead(401, { 'www-authenticate': challenge }).end('{"errors":[]}');
  });
  await new Promise<void>((r) => elsewhere.listen(0, '127.0.0.1', r));
  elsewherePort = (elsewhere.address() as AddressInfo).port;
  authFile = join(tempDir(), 'config.json');
  writeFileSync(authFile, JSON.stringify({ auths: { [REG]: { auth: BASIC } } }));
  gw = await startGateway({
    manifest: {
      rules: [...REPOS, 'unreachable'].map((repo) => ({
        type: 'docker-v1', domain: D, 'package-id': repo, 'repository-name': `org/${repo}`, registry: REG, 'always-proxy': true,
      })),
    },
    args: ['--upstream', `${REG}=http://127.0.0.1:${port}`, '--registry-auth', authFile, '--upstream-timeout', '500'],
  });
});
after(async () => {
  await gw.stop();
  for (const server of [upstream, elsewhere]) {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

const grant = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: TOKEN, expires_in: 300 }));
const pull = (repo: string) => request(gw.port, { path: `/v2/org/${repo}/manifests/1.0`, host: D });

test('requests that need the same token while it is fetched share one fetch; the token is never shown', async () => {
  // The token comes once all five were challenged (and a little later, for the last challenge to reach the gateway).
  realms.set('shared', (_req, res) => {
    const poll = setInterval(() => {
      if ((challenged.get('shared') ?? 0) < 5) return;
      clearInterval(poll);
      setTimeout(() => grant(res), 100);
    }, 10);
  });
  const answers = await Promise.all(Array.from({ length: 5 }, () => pull('shared')));
  for (const res of answers) {
    assert.equal(res.status, 200);
    assert.equal(res.text, '{"manifest":true}');
    assert.ok(!JSON.stringify(res.headers).includes(TOKEN));
  }
  assert.deepEqual(tokenRequests.get('shared'), [`Basic ${BASIC}`]);
  // Later requests find it cached.
  assert.equal((await pull('shared')).status, 200);
  assert.equal(tokenRequests.get('shared')?.length, 1);
});

test('a token realm that stays silent past --upstream-timeout gives 504, as a silent registry does', async () => {
  realms.set('silent', () => undefined);
  const started = performance.now();
  const res = await pull('silent');
  assert.equal(res.status, 504);
  assert.equal(JSON.parse(res.text).errors[0].code, 'UNAVAILABLE');
  // The deadline is the gateway's --upstream-timeout (500 ms), not a fixed one.
  assert.ok(performance.now() - started < 3000, `answered after ${Math.round(performance.now() - started)} ms`);
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.equal(line.status, 504);
  assert.equal(line.outcome, 'upstream-error');
  const metrics = (await request(gw.adminPort, { path: '/metrics' })).text;
  assert.match(metrics, /gateway_upstream_errors_total\{code="UPSTREAM_TIMEOUT"\} [1-9]/);
});

test('a token realm that cannot be reached gives 502, and the gateway keeps serving', async () => {
  const res = await pull('unreachable');
  assert.equal(res.status, 502);
  assert.equal(JSON.parse(res.text).errors[0].code, 'UNAVAILABLE');
  assert.equal((await pull('shared')).status, 200);
});

test('a client that leaves while the token is fetched is let go at once (499); the fetch goes on and the token is cached', { timeout: 15_000 }, async () => {
  let release!: () => void;
  const asked = new Promise<void>((asking) =>
    realms.set('leave', (_req, res) => {
      release = () => grant(res);
      asking();
    }),
  );
  const req = httpRequest({ host: '127.0.0.1', port: gw.port, path: '/v2/org/leave/manifests/1.0', headers: { host: D }, agent: false });
  req.on('error', () => undefined);
  req.end();
  await asked;
  req.destroy();
  // The realm has not answered: the line comes from the client leaving, not from the end of the fetch.
  const line = await gw.waitForLine((l) => l.path === '/v2/org/leave/manifests/1.0', 5000);
  assert.equal(line.status, 499);
  assert.equal(line.outcome, 'proxy');
  release();
  // The fetch the client started goes on for the next request (cached, or still in flight): no second one.
  const res = await pull('leave');
  assert.equal(res.status, 200);
  assert.equal(tokenRequests.get('leave')?.length, 1);
});

test("the gateway's credentials answer its registry's challenges only, not those of an origin the registry redirects to", async () => {
  for (const repo of ['movedbasic', 'movedbearer']) {
    const res = await pull(repo);
    // The other origin's challenge reaches the client unanswered.
    assert.equal(res.status, 401, repo);
  }
  assert.deepEqual(elsewhereSaw, [
    { path: '/v2/org/movedbasic/manifests/1.0', authorization: undefined },
    { path: '/v2/org/movedbearer/manifests/1.0', authorization: undefined },
  ]);
});

test('SIGHUP reads --registry-auth again: new credentials, tokens got with the old ones dropped; a file now bad keeps the old ones', async () => {
  realms.set('rotated', (_req, res) => grant(res));
  assert.equal((await pull('rotated')).status, 200);
  assert.deepEqual(tokenRequests.get('rotated'), [`Basic ${BASIC}`]);
  const rotated = Buffer.from('bob:new-token').toString('base64');
  writeFileSync(authFile, JSON.stringify({ auths: { [REG]: { auth: rotated } } }));
  gw.child.kill('SIGHUP');
  await gw.waitForLog((l) => l.msg === 'registry credentials read again');
  assert.equal((await pull('rotated')).status, 200);
  assert.deepEqual(tokenRequests.get('rotated'), [`Basic ${BASIC}`, `Basic ${rotated}`]);
  writeFileSync(authFile, '{"auths":{"registry.test":{"auth":"!!!"}}}');
  gw.child.kill('SIGHUP');
  const refused = await gw.waitForLog((l) => l.msg === 'registry credentials not read again; the old ones stay');
  assert.match(String(refused.error), /auth is not the base64 of user:password/);
  // Nothing changed: the token got with the rotated credentials still serves.
  assert.equal((await pull('rotated')).status, 200);
  assert.equal(tokenRequests.get('rotated')?.length, 2);
});

test("credentials the token realm or the registry refuses: the client gets the registry's 401, and the operations log says whose and why", async () => {
  realms.set('refused', (_req, res) => res.writeHead(401).end());
  const refused = await pull('refused');
  assert.equal(refused.status, 401);
  assert.match(String(refused.headers['www-authenticate']), /^Bearer realm=/);
  const byRealm = await gw.waitForLog((l) => l.msg === 'upstream failed' && l.code === 'UNAUTHORIZED' && l.backend === `http://127.0.0.1:${port}`);
  assert.equal(byRealm.reason, "the token realm answered 401 to the gateway's credentials");
  const basic = await pull('basicrefused');
  assert.equal(basic.status, 401);
  await gw.waitForLog((l) => l.msg === 'upstream failed' && l.code === 'UNAUTHORIZED' && l.reason === "the registry answered 401 to the gateway's credentials");
});

test('--registry-auth: auth and username/password entries are read; a file docker could not use is refused with where and why', () => {
  const file = join(tempDir(), 'config.json');
  const read = (json: string) => {
    writeFileSync(file, json);
    return readCredentials(file);
  };
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  assert.deepEqual(
    read(JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: b64('u:p') }, 'ghcr.io': { username: 'me', password: 'pw' }, 'quay.io': { auth: b64('x:yz').replace(/=+$/, '') } } })),
    new Map([['registry-1.docker.io', b64('u:p')], ['ghcr.io', b64('me:pw')], ['quay.io', b64('x:yz')]]),
  );
  for (const [json, message] of [
    ['nope', /--registry-auth .*config\.json: Unexpected token/],
    ['null', /not a Docker config\.json, whose "auths" is an object/],
    ['{"auths":[]}', /not a Docker config\.json/],
    ['{"auths":{"ghcr.io":null}}', /auths\["ghcr\.io"\] has neither "auth" nor "username"/],
    ['{"credsStore":"desktop","auths":{"ghcr.io":{}}}', /has neither "auth" nor "username" \(credsStore and credHelpers are not read\)/],
    ['{"auths":{"ghcr.io":{"auth":"!!!"}}}', /auths\["ghcr\.io"\]\.auth is not the base64 of user:password/],
    [JSON.stringify({ auths: { 'ghcr.io': { auth: b64('no-colon') } } }), /\.auth is not the base64 of user:password/],
    // As `az acr login` writes it: an "auth" with an empty password, which docker does not use beside the token.
    [JSON.stringify({ auths: { 'x.azurecr.io': { auth: b64('00000000-0000-0000-0000-000000000000:'), identitytoken: 'eyJ...' } } }), /auths\["x\.azurecr\.io"\] has an "identitytoken", a refresh token .*give a username and password/],
  ] as const) {
    assert.throws(() => read(json), message, json);
  }
});
