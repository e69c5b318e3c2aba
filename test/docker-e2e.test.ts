// Docker/OCI pulls end to end (SPEC §4): a real registry (Debian's
// docker-registry), real clients (skopeo, dockerd, podman, containerd) and
// the real gateway process. Needs docker-registry, skopeo, umoci, podman,
// docker.io, containerd and openssl, which .ci/run installs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';
import {
  buildImage, digestOf, makeCerts, pushImage, skopeo, startRegistry, startTokenServer,
  type Registry, type TestCa, type TokenServer,
} from './helpers/registry.ts';
import { startDaemons, startDockerd, type Containerd, type Daemons, type Dockerd } from './helpers/dockerd.ts';

const run = promisify(execFile);
const work = tempDir('gw-docker-');
let ca: TestCa;
let image: string;
let imageDigest: string;

before(async () => {
  ca = makeCerts(join(work, 'certs'));
  mkdirSync(join(work, 'img'));
  // 8 MiB of incompressible text: the layer spans many of the proxy's reads,
  // so that real clients (skopeo, podman, dockerd) pull it through the relay's
  // backpressure, and their digest checks vouch for every byte.
  image = buildImage(join(work, 'img'), `hello from the gateway test ${Date.now()}\n${randomBytes(6 * 1024 * 1024).toString('base64')}\n`);
  imageDigest = await digestOf(`oci:${image}`);
});

const dockerRule = (registry: string, extra: Record<string, unknown> = {}) => ({
  rules: [{ type: 'docker-v1', domain: '127.0.0.1', 'package-id': 'hello-pkg', 'repository-name': 'test/hello', registry, ...extra }],
});

/** Files of an OCI layout's blob store, by digest, with their bytes. */
function blobs(layoutDir: string): Map<string, string> {
  const dir = join(layoutDir, 'blobs', 'sha256');
  return new Map(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f)).toString('base64')]));
}

function dockerCaptures(gw: GatewayProcess) {
  return gw.lines.filter((l) => l.capture?.type === 'docker');
}

/** `docker pull ref`, and the image it got is the test image. */
async function dockerPull(dockerd: Dockerd, ref: string): Promise<void> {
  await dockerd.docker(['pull', ref]);
  const { stdout } = await dockerd.docker(['image', 'inspect', '--format', '{{index .RepoDigests 0}}', ref]);
  assert.ok(stdout.trim().endsWith(imageDigest), stdout);
}

describe('plain registry, proxy mode', { timeout: 300_000 }, () => {
  let registry: Registry;
  let gw: GatewayProcess;
  before(async () => {
    registry = await startRegistry({ dir: join(work, 'plain') });
    await pushImage(image, registry.host, 'test/hello:v1');
    gw = await startGateway({
      manifest: dockerRule(registry.host),
      args: ['--upstream', `${registry.host}=http://${registry.host}`],
    });
  });
  after(async () => {
    await gw.stop();
    await registry.stop();
  });

  test('skopeo copies the image through the gateway, byte for byte', async () => {
    const out = join(work, 'pulled-plain');
    await skopeo(['copy', '--src-tls-verify=false', `docker://127.0.0.1:${gw.port}/test/hello:v1`, `oci:${out}:v1`]);
    assert.equal(await digestOf(`oci:${out}:v1`), imageDigest);
    const pushed = blobs(join(work, 'img', 'layout'));
    const pulled = blobs(out);
    for (const [digest, bytes] of pulled) assert.equal(bytes, pushed.get(digest), `blob ${digest}`);
    assert.ok(pulled.size >= 3, 'manifest, config and layer');
  });

  test('each pull request is a docker capture with image and reference', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const captures = dockerCaptures(gw);
    assert.ok(captures.every((l) => l.outcome === 'proxy'), JSON.stringify(captures.map((l) => l.outcome)));
    const manifest = captures.find((l) => l.path === '/v2/test/hello/manifests/v1');
    assert.deepEqual(manifest?.capture, { type: 'docker', package: 'hello-pkg', rule: null, image: 'test/hello', reference: 'v1', registry: registry.host });
    const blob = captures.find((l) => l.path.includes('/blobs/sha256:'));
    assert.match(String(blob?.capture?.reference), /^sha256:[0-9a-f]{64}$/);
    const version = captures.find((l) => l.path === '/v2/');
    assert.equal(version?.capture?.image, '');
  });

  test('skopeo list-tags and inspect through the gateway: the tag list, and the manifest by tag', async () => {
    assert.deepEqual(JSON.parse(await skopeo(['list-tags', '--tls-verify=false', `docker://127.0.0.1:${gw.port}/test/hello`])).Tags, ['v1']);
    assert.equal(JSON.parse(await skopeo(['inspect', '--tls-verify=false', `docker://127.0.0.1:${gw.port}/test/hello:v1`])).Digest, imageDigest);
    await new Promise((r) => setTimeout(r, 200));
    const tags = dockerCaptures(gw).find((l) => l.path === '/v2/test/hello/tags/list');
    assert.equal(tags?.status, 200);
    assert.equal(tags?.capture?.reference, 'list');
  });

  test('podman pulls through the gateway', () => {
    const root = join(work, 'podman');
    const env = { ...process.env, HOME: root };
    execFileSync('podman', ['--root', join(root, 'r'), '--runroot', join(root, 'rr'), '--storage-driver', 'vfs', 'pull', '--tls-verify=false', `127.0.0.1:${gw.port}/test/hello:v1`], { env, stdio: 'pipe', timeout: 120_000 });
    const digest = execFileSync('podman', ['--root', join(root, 'r'), '--runroot', join(root, 'rr'), '--storage-driver', 'vfs', 'image', 'inspect', '--format', '{{.Digest}}', `127.0.0.1:${gw.port}/test/hello:v1`], { env, encoding: 'utf8' }).trim();
    assert.equal(digest, imageDigest);
  });
});

describe('TLS registry: dockerd and containerd are redirected, and proxied with always-proxy', { timeout: 300_000 }, () => {
  let registry: Registry;
  let daemons: Daemons | undefined;
  let dockerd: Dockerd;
  let containerd: Containerd;
  before(async () => {
    registry = await startRegistry({ dir: join(work, 'tls'), tls: ca });
    await pushImage(image, registry.host, 'test/hello:v1', { certDir: ca.dir });
    daemons = await startDaemons(join(work, 'daemons'), registry.host, ca.caCert);
    ({ dockerd, containerd } = daemons);
  });
  after(async () => {
    await daemons?.stop();
    await registry.stop();
  });

  /** dockerd pulls the image through the gateway and gets its digest; the capture lines of the pull. */
  async function pullThrough(gw: GatewayProcess) {
    const ref = `127.0.0.1:${gw.port}/test/hello:v1`;
    try {
      await dockerPull(dockerd, ref);
    } finally {
      await dockerd.docker(['rmi', ref]).catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 200));
    return dockerCaptures(gw).filter((l) => l.path.startsWith('/v2/test/hello/'));
  }

  test('docker pull is redirected to the registry', async () => {
    const gw = await startGateway({ manifest: dockerRule(registry.host) });
    try {
      const pulls = await pullThrough(gw);
      assert.ok(pulls.length >= 1);
      assert.ok(pulls.every((l) => l.outcome === 'redirect' && l.status === 307), JSON.stringify(pulls.map((l) => [l.path, l.outcome])));
      assert.match(String(pulls[0].client.userAgent), /^docker\//);
      // dockerd tries HTTPS first on 127.0.0.1: that handshake is no request and writes no line.
      assert.deepEqual(gw.lines.filter((l) => l.outcome === 'rejected'), []);
    } finally {
      await gw.stop();
    }
  });

  // What a publisher's users do: the gateway's name over HTTPS (--tls-cert), no insecure-registry setting anywhere.
  test('the gateway serving HTTPS itself: dockerd, containerd and podman pull, trusting it like any registry', async () => {
    const gw = await startGateway({ manifest: dockerRule(registry.host), args: ['--tls-cert', ca.cert, '--tls-key', ca.key], env: { NODE_EXTRA_CA_CERTS: ca.caCert } });
    const ref = `127.0.0.1:${gw.port}/test/hello:v1`;
    try {
      dockerd.trustCa(`127.0.0.1:${gw.port}`, ca.caCert);
      const pulls = await pullThrough(gw);
      assert.ok(pulls.length >= 1);
      assert.ok(pulls.every((l) => l.outcome === 'redirect'), JSON.stringify(pulls.map((l) => [l.path, l.outcome])));
      assert.deepEqual(gw.lines.filter((l) => l.outcome === 'rejected'), []);

      // ctr takes a localhost registry for plain HTTP unless its hosts file (containerd's certs.d, as Kubernetes nodes configure it) says otherwise.
      const hosts = join(work, 'ctr-hosts', `127.0.0.1:${gw.port}`);
      mkdirSync(hosts, { recursive: true });
      writeFileSync(join(hosts, 'hosts.toml'), `server = "https://127.0.0.1:${gw.port}"\n\n[host."https://127.0.0.1:${gw.port}"]\n  ca = "${ca.caCert}"\n`);
      await containerd.ctr(['images', 'pull', '--hosts-dir', join(work, 'ctr-hosts'), '--snapshotter', 'native', ref]);
      const { stdout } = await containerd.ctr(['images', 'ls']);
      assert.match(stdout, new RegExp(`^${ref.replaceAll('.', '\\.')}\\s.*${imageDigest}`, 'm'));
      await containerd.ctr(['images', 'rm', ref]);

      // podman is proxied (its user agent is not on the redirect list), over HTTPS both ways.
      const root = join(work, 'podman-https');
      const podman = (args: string[]) => execFileSync('podman', ['--root', join(root, 'r'), '--runroot', join(root, 'rr'), '--storage-driver', 'vfs', ...args], { env: { ...process.env, HOME: root }, encoding: 'utf8', stdio: 'pipe', timeout: 120_000 });
      const seen = gw.lines.length;
      podman(['pull', '--cert-dir', ca.dir, ref]);
      assert.equal(podman(['image', 'inspect', '--format', '{{.Digest}}', ref]).trim(), imageDigest);
      await new Promise((r) => setTimeout(r, 200));
      const byPodman = gw.lines.slice(seen).filter((l) => l.path.includes('/blobs/'));
      assert.ok(byPodman.length >= 1 && byPodman.every((l) => l.outcome === 'proxy' && l.status === 200), JSON.stringify(byPodman.map((l) => [l.path, l.outcome])));
      assert.deepEqual(gw.lines.filter((l) => l.outcome === 'rejected'), []);
    } finally {
      await gw.stop();
    }
  });

  test('the same pull works with always-proxy', async () => {
    const gw = await startGateway({
      manifest: dockerRule(registry.host, { 'always-proxy': true }),
      env: { NODE_EXTRA_CA_CERTS: ca.caCert },
    });
    try {
      const pulls = await pullThrough(gw);
      assert.ok(pulls.some((l) => l.path.includes('/blobs/')), 'blobs went through the gateway');
      assert.ok(pulls.every((l) => l.outcome === 'proxy'), JSON.stringify(pulls.map((l) => [l.path, l.outcome, l.status])));
    } finally {
      await gw.stop();
    }
  });

  // containerd's own resolver and fetcher, not dockerd's: what Kubernetes nodes (CRI) and nerdctl pull with.
  test('containerd (ctr) pulls through the gateway, redirected and with always-proxy', async () => {
    for (const [extra, outcome, status] of [[{}, 'redirect', 307], [{ 'always-proxy': true }, 'proxy', 200]] as const) {
      const gw = await startGateway({ manifest: dockerRule(registry.host, extra), env: { NODE_EXTRA_CA_CERTS: ca.caCert } });
      const ref = `127.0.0.1:${gw.port}/test/hello:v1`;
      try {
        // The gateway over plain HTTP; the registry it redirects to over TLS, with the test CA. The native snapshotter unpacks anywhere.
        await containerd.ctr(['images', 'pull', '--plain-http', '--tlscacert', ca.caCert, '--snapshotter', 'native', ref]);
        const { stdout } = await containerd.ctr(['images', 'ls']);
        assert.match(stdout, new RegExp(`^${ref.replaceAll('.', '\\.')}\\s.*${imageDigest}`, 'm'));
        await new Promise((r) => setTimeout(r, 200));
        const pulls = dockerCaptures(gw).filter((l) => l.path.startsWith('/v2/test/hello/'));
        assert.ok(pulls.some((l) => l.path.includes('/blobs/')), JSON.stringify(pulls.map((l) => l.path)));
        for (const l of pulls) {
          assert.equal(l.outcome, outcome, l.path);
          assert.equal(l.status, status, l.path);
          assert.match(String(l.client.userAgent), /^containerd\//);
        }
      } finally {
        await containerd.ctr(['images', 'rm', ref]).catch(() => undefined);
        await gw.stop();
      }
    }
  });
});

describe('registry with Basic auth (htpasswd)', { timeout: 300_000 }, () => {
  let registry: Registry;
  let gw: GatewayProcess;
  before(async () => {
    registry = await startRegistry({ dir: join(work, 'basic'), tls: ca, htpasswd: { user: 'alice', password: 's3cret' } });
    await pushImage(image, registry.host, 'test/hello:v1', { certDir: ca.dir, creds: 'alice:s3cret' });
    gw = await startGateway({ manifest: dockerRule(registry.host), env: { NODE_EXTRA_CA_CERTS: ca.caCert } });
  });
  after(async () => {
    await gw.stop();
    await registry.stop();
  });

  test('skopeo with --src-creds works: Basic auth is proxied, the challenge passes through', async () => {
    const out = join(work, 'pulled-basic');
    await skopeo(['copy', '--src-tls-verify=false', '--src-creds', 'alice:s3cret', `docker://127.0.0.1:${gw.port}/test/hello:v1`, `oci:${out}:v1`]);
    assert.equal(await digestOf(`oci:${out}:v1`), imageDigest);
    await new Promise((r) => setTimeout(r, 200));
    const withAuth = gw.lines.filter((l) => l.path === '/v2/test/hello/manifests/v1');
    assert.ok(withAuth.some((l) => l.outcome === 'proxy' && l.status === 200));
  });

  test('without credentials the 401 challenge reaches the client', async () => {
    const res = await request(gw.port, { path: '/v2/test/hello/manifests/v1', host: '127.0.0.1' });
    assert.equal(res.status, 401);
    assert.match(String(res.headers['www-authenticate']), /^Basic realm="basic-realm"/);
  });

  // dockerd follows the gateway's redirects with its credentials (E2E-NOTES): it logs in and pulls
  // at the registry itself, and the gateway, which only redirects it, never sees them.
  test('docker login to the gateway, then docker pull: both redirected, dockerd presents its credentials to the registry', async () => {
    const dockerd = await startDockerd(join(work, 'dockerd-basic'));
    const ref = `127.0.0.1:${gw.port}/test/hello:v1`;
    try {
      const before = gw.lines.length;
      await dockerd.docker(['login', '--username', 'alice', '--password', 's3cret', `127.0.0.1:${gw.port}`]);
      await new Promise((r) => setTimeout(r, 200));
      const login = gw.lines.slice(before).filter((l) => l.path === '/v2/');
      assert.ok(login.length > 0 && login.every((l) => l.status === 307 && l.outcome === 'redirect'), JSON.stringify(login.map((l) => [l.path, l.status])));
      await dockerPull(dockerd, ref);
      await new Promise((r) => setTimeout(r, 200));
      const pulls = gw.lines.slice(before).filter((l) => l.path.startsWith('/v2/test/hello/'));
      assert.ok(pulls.some((l) => l.path.includes('/blobs/')), JSON.stringify(pulls.map((l) => l.path)));
      assert.ok(pulls.every((l) => l.outcome === 'redirect' && /^docker\//.test(String(l.client.userAgent))), JSON.stringify(pulls.map((l) => [l.path, l.status, l.outcome])));
    } finally {
      await dockerd.stop();
    }
  });
});

// Docker Hub's way: a registry with token auth that gives anonymous clients pull tokens. Redirected
// clients fetch their tokens from the realm themselves; the gateway holds no credentials and asks for none.
describe('registry with anonymous token auth, as Docker Hub: dockerd, containerd and podman pull through the gateway', { timeout: 300_000 }, () => {
  let tokens: TokenServer;
  let registry: Registry;
  let daemons: Daemons | undefined;
  let dockerd: Dockerd;
  let containerd: Containerd;
  before(async () => {
    tokens = await startTokenServer(join(work, 'anonymous-token'), 'bob', 'hunter2', 300, true);
    registry = await startRegistry({ dir: join(work, 'anonymous-registry'), tls: ca, token: tokens });
    await pushImage(image, registry.host, 'test/hello:v1', { certDir: ca.dir, creds: 'bob:hunter2' });
    daemons = await startDaemons(join(work, 'daemons-anonymous'), registry.host, ca.caCert);
    ({ dockerd, containerd } = daemons);
  });
  after(async () => {
    await daemons?.stop();
    await registry.stop();
    await tokens.stop();
  });

  test('each pulls the image; every request to the gateway is redirected, and the clients get anonymous pull tokens from the realm', async () => {
    const gw = await startGateway({ manifest: dockerRule(registry.host) });
    const ref = `127.0.0.1:${gw.port}/test/hello:v1`;
    try {
      await dockerPull(dockerd, ref);
      await containerd.ctr(['images', 'pull', '--plain-http', '--tlscacert', ca.caCert, '--snapshotter', 'native', ref]);
      assert.match((await containerd.ctr(['images', 'ls'])).stdout, new RegExp(`\\s${imageDigest}\\s`));
      await new Promise((r) => setTimeout(r, 200));
      const pulls = dockerCaptures(gw).filter((l) => l.path.startsWith('/v2/test/hello/'));
      for (const agent of [/^docker\//, /^containerd\//]) {
        const theirs = pulls.filter((l) => agent.test(String(l.client.userAgent)));
        assert.ok(theirs.some((l) => l.path.includes('/blobs/')), `${agent}: ${JSON.stringify(pulls.map((l) => [l.path, l.client.userAgent]))}`);
        assert.ok(theirs.every((l) => l.status === 307 && l.outcome === 'redirect'), JSON.stringify(theirs.map((l) => [l.path, l.status])));
      }
      const anonymous = tokens.requests.filter((r) => r.authorization === undefined && r.scope === 'repository:test/hello:pull');
      assert.ok(anonymous.length >= 2, JSON.stringify(tokens.requests));
    } finally {
      await dockerd.docker(['rmi', ref]).catch(() => undefined);
      await containerd.ctr(['images', 'rm', ref]).catch(() => undefined);
      await gw.stop();
    }
  });

  test("podman, proxied (it is not known to follow registry redirects), gets the registry's challenge through the gateway and pulls with its own anonymous token", async () => {
    const gw = await startGateway({ manifest: dockerRule(registry.host), env: { NODE_EXTRA_CA_CERTS: ca.caCert } });
    const root = join(work, 'podman-anonymous');
    // Not execFileSync: the token server answers from this process.
    const podman = async (args: string[]) =>
      (await run('podman', ['--root', join(root, 'r'), '--runroot', join(root, 'rr'), '--storage-driver', 'vfs', ...args], { env: { ...process.env, HOME: root }, timeout: 120_000 })).stdout;
    try {
      const before = tokens.requests.length;
      await podman(['pull', '--tls-verify=false', `127.0.0.1:${gw.port}/test/hello:v1`]);
      assert.equal((await podman(['image', 'inspect', '--format', '{{.Digest}}', `127.0.0.1:${gw.port}/test/hello:v1`])).trim(), imageDigest);
      await new Promise((r) => setTimeout(r, 200));
      const pulls = dockerCaptures(gw).filter((l) => l.path.startsWith('/v2/test/hello/'));
      assert.ok(pulls.some((l) => l.path.includes('/blobs/') && l.status === 200 && l.outcome === 'proxy'), JSON.stringify(pulls.map((l) => [l.path, l.status])));
      // The registry's challenge, to the version check.
      assert.ok(gw.lines.some((l) => l.path === '/v2/' && l.status === 401 && l.outcome === 'proxy'), 'the challenge reached podman');
      assert.ok(tokens.requests.slice(before).some((r) => r.authorization === undefined && r.scope === 'repository:test/hello:pull'));
    } finally {
      await gw.stop();
    }
  });
});

describe('registry with token auth', { timeout: 300_000 }, () => {
  let tokens: TokenServer;
  let registry: Registry;
  before(async () => {
    tokens = await startTokenServer(join(work, 'token'), 'bob', 'hunter2');
    registry = await startRegistry({ dir: join(work, 'tokreg'), tls: ca, token: tokens });
    await pushImage(image, registry.host, 'test/hello:v1', { certDir: ca.dir, creds: 'bob:hunter2' });
  });
  after(async () => {
    await registry.stop();
    await tokens.stop();
  });

  test("gateway-held credentials reach no repository but the rule's: dot segments and escaped slashes get 400", async () => {
    // A repository on the same registry that no rule names, readable with the gateway's credentials.
    mkdirSync(join(work, 'img-private'));
    await pushImage(buildImage(join(work, 'img-private'), 'private\n'), registry.host, 'test/private:v1', { certDir: ca.dir, creds: 'bob:hunter2' });
    const cfg = join(work, 'docker-config-private.json');
    writeFileSync(cfg, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('bob:hunter2').toString('base64') } } }));
    const glob = { type: 'docker-v2', domain: '127.0.0.1', 'rule-id': 'glob', pattern: 'test/h*', registry: registry.host };
    const manifest = dockerRule(registry.host);
    const gw = await startGateway({ manifest: { rules: [...manifest.rules, glob] }, args: ['--registry-auth', cfg], env: { NODE_EXTRA_CA_CERTS: ca.caCert } });
    try {
      const accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json';
      const get = (path: string) => request(gw.port, { path, host: '127.0.0.1', headers: { accept } });
      assert.equal((await get('/v2/test/hello/manifests/v1')).status, 200);
      const before = tokens.requests.length;
      for (const path of [
        // The WHATWG URL parser, which the proxy builds its backend URL with, removes these.
        '/v2/test/hello/manifests/../../private/manifests/v1',
        '/v2/test/hello/manifests/%2e%2e/%2e%2e/private/manifests/v1',
        // The registry's router decodes the escaped slashes, cleans the path and redirects to
        // /v2/test/private/..., a /v2/ redirect the proxy would follow with its credentials.
        '/v2/test/hx%2F..%2Fprivate/manifests/v1',
      ]) {
        const res = await get(path);
        assert.equal(res.status, 400, path);
        assert.doesNotMatch(res.text, /schemaVersion/, path);
      }
      assert.deepEqual(tokens.requests.slice(before).filter((r) => r.scope?.includes('private')), [], 'no token was asked for test/private');
    } finally {
      await gw.stop();
    }
  });

  test("the client's own token flow works through the gateway", async () => {
    const gw = await startGateway({ manifest: dockerRule(registry.host), env: { NODE_EXTRA_CA_CERTS: ca.caCert } });
    try {
      const out = join(work, 'pulled-client-token');
      await skopeo(['copy', '--src-tls-verify=false', '--src-creds', 'bob:hunter2', `docker://127.0.0.1:${gw.port}/test/hello:v1`, `oci:${out}:v1`]);
      assert.equal(await digestOf(`oci:${out}:v1`), imageDigest);
      // An anonymous pull through this gateway (no credentials of its own) is refused.
      await assert.rejects(skopeo(['copy', '--src-tls-verify=false', `docker://127.0.0.1:${gw.port}/test/hello:v1`, `oci:${join(work, 'anon')}:v1`]));
    } finally {
      await gw.stop();
    }
  });

  test('gateway-held credentials: anonymous clients pull, the token is cached and never shown', async () => {
    const cfg = join(work, 'docker-config.json');
    writeFileSync(cfg, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('bob:hunter2').toString('base64') } } }));
    const gw = await startGateway({ manifest: dockerRule(registry.host), args: ['--registry-auth', cfg], env: { NODE_EXTRA_CA_CERTS: ca.caCert } });
    try {
      const before = tokens.requests.length;
      for (const n of [1, 2]) {
        const out = join(work, `pulled-gw-token-${n}`);
        await skopeo(['copy', '--src-tls-verify=false', `docker://127.0.0.1:${gw.port}/test/hello:v1`, `oci:${out}:v1`]);
        assert.equal(await digestOf(`oci:${out}:v1`), imageDigest);
      }
      const fetched = tokens.requests.slice(before);
      assert.ok(fetched.length >= 1);
      assert.ok(fetched.every((r) => r.authorization === 'Basic ' + Buffer.from('bob:hunter2').toString('base64')));
      const metrics = (await request(gw.adminPort, { path: '/metrics' })).text;
      const hits = Number(/^gateway_registry_token_cache_hits (\d+)/m.exec(metrics)?.[1]);
      assert.ok(hits >= 1, `token cache hits: ${hits}`);
      // The second pull needed no new token for the repository scope.
      const repoTokens = fetched.filter((r) => r.scope === 'repository:test/hello:pull');
      assert.equal(repoTokens.length, 1, JSON.stringify(fetched));
      // The client never sees a token: a direct manifest request carries no auth header back.
      const res = await request(gw.port, { path: '/v2/test/hello/manifests/v1', host: '127.0.0.1', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.authorization, undefined);
      assert.doesNotMatch(JSON.stringify(res.headers), /Bearer|eyJ/);
      // The OCI referrers API reaches the registry with the gateway's token. This one (distribution 2.8) has
      // no such API: its 404 reaches the client, which then falls back to tags.
      const referrers = await request(gw.port, { path: `/v2/test/hello/referrers/${imageDigest}`, host: '127.0.0.1' });
      assert.equal(referrers.status, 404);
      assert.equal(referrers.headers['docker-distribution-api-version'], 'registry/2.0', 'the answer is the registry\'s');
      const [line] = await gw.linesFor(referrers.headers['x-request-id'] as string);
      assert.equal(line.outcome, 'proxy');
      assert.equal(line.capture?.type === 'docker' ? line.capture.reference : null, imageDigest);
    } finally {
      await gw.stop();
    }
  });
});
