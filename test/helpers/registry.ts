/**
 * Real Docker registries for end-to-end tests: Debian's `docker-registry`
 * on 127.0.0.1, optionally with TLS (a test CA made with openssl), Basic
 * auth (htpasswd) or token auth (a small token server in this process that
 * signs JWTs the registry verifies). Images are built with umoci from a
 * hand-made OCI layout and pushed with skopeo: no internet needed.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { createPrivateKey, createSign, randomUUID, X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, get as httpGet, type Server } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

/** A free TCP port on 127.0.0.1 (the registry needs one in its config file). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface TestCa {
  /** A folder holding only `ca.crt` (for skopeo's --src-cert-dir). */
  readonly dir: string;
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
  /** Another server certificate for IP 127.0.0.1 (and `names`: host names or IPv4 addresses) from the same CA, in files named after `name`. */
  issue(name: string, days?: number, names?: readonly string[]): { readonly cert: string; readonly key: string };
}

/** A self-signed CA and a server certificate for IP 127.0.0.1, signed by it. */
export function makeCerts(dir: string): TestCa {
  mkdirSync(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=gateway test CA', '-keyout', p('ca.key'), '-out', p('ca.crt'));
  const issue = (name: string, days = 2, names: readonly string[] = []) => {
    const alt = ['IP:127.0.0.1', ...names.map((n) => (/^\d+\.\d+\.\d+\.\d+$/.test(n) ? `IP:${n}` : `DNS:${n}`))].join(',');
    writeFileSync(p(`${name}.cnf`), `subjectAltName=${alt}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`));
    ssl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-days', String(days), '-extfile', p(`${name}.cnf`), '-out', p(`${name}.crt`));
    return { cert: p(`${name}.crt`), key: p(`${name}.key`) };
  };
  const server = issue('server');
  // skopeo's --*-cert-dir reads every *.key as a client key: the CA goes alone.
  const trust = p('trust');
  mkdirSync(trust);
  copyFileSync(p('ca.crt'), join(trust, 'ca.crt'));
  return { dir: trust, caCert: join(trust, 'ca.crt'), ...server, issue };
}

export interface RegistryOptions {
  readonly dir: string;
  readonly tls?: TestCa;
  readonly htpasswd?: { user: string; password: string };
  readonly token?: TokenServer;
}

export interface Registry {
  readonly port: number;
  /** host:port */
  readonly host: string;
  readonly log: () => string;
  stop(): Promise<void>;
}

export async function startRegistry(opts: RegistryOptions): Promise<Registry> {
  const port = await freePort();
  const data = join(opts.dir, 'data');
  mkdirSync(data, { recursive: true });
  const lines = [
    'version: 0.1',
    'log: {level: info}',
    `storage: {filesystem: {rootdirectory: ${data}}, delete: {enabled: true}}`,
    'http:',
    `  addr: 127.0.0.1:${port}`,
  ];
  if (opts.tls !== undefined) lines.push(`  tls: {certificate: ${opts.tls.cert}, key: ${opts.tls.key}}`);
  if (opts.htpasswd !== undefined) {
    const file = join(opts.dir, 'htpasswd');
    writeFileSync(file, execFileSync('htpasswd', ['-Bbn', opts.htpasswd.user, opts.htpasswd.password]));
    lines.push('auth:', `  htpasswd: {realm: basic-realm, path: ${file}}`);
  } else if (opts.token !== undefined) {
    lines.push(
      'auth:',
      '  token:',
      `    realm: ${opts.token.realm}`,
      `    service: ${opts.token.service}`,
      `    issuer: ${opts.token.issuer}`,
      `    rootcertbundle: ${opts.token.certFile}`,
    );
  }
  const config = join(opts.dir, 'registry.yml');
  writeFileSync(config, lines.join('\n') + '\n');
  const child: ChildProcess = spawnOwned('docker-registry', ['serve', config]);
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  const ca = opts.tls === undefined ? undefined : readFileSync(opts.tls.caCert);
  try {
    await waitUntil(() => answers(port, ca), 15_000, () => `registry did not start: ${output}`);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  return {
    port,
    host: `127.0.0.1:${port}`,
    log: () => output,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/**
 * Spawns a helper process that never outlives the test process, and does not
 * keep it running: a failed `before` hook cannot leave it hanging.
 */
export function spawnOwned(command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  child.unref();
  (child.stdout as unknown as { unref(): void }).unref();
  (child.stderr as unknown as { unref(): void }).unref();
  return child;
}

/** True once GET /v2/ answers 200 or 401 (over TLS when `ca` is given). */
function answers(port: number, ca: Buffer | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const get = ca === undefined ? httpGet : httpsGet;
    const req = get({ host: '127.0.0.1', port, path: '/v2/', ca, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 || res.statusCode === 401);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

export async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(what());
}

/** Builds a one-layer image as an OCI layout (umoci); returns `layout:tag`. */
export function buildImage(dir: string, content: string, tag = 'v1'): string {
  const layout = join(dir, 'layout');
  writeFileSync(join(dir, 'hello.txt'), content);
  const umoci = (...args: string[]) => execFileSync('umoci', args, { stdio: 'pipe', cwd: dir });
  umoci('init', '--layout', layout);
  umoci('new', '--image', `${layout}:${tag}`);
  umoci('insert', '--image', `${layout}:${tag}`, join(dir, 'hello.txt'), '/hello.txt');
  umoci('config', '--image', `${layout}:${tag}`, '--config.cmd', '/hello.txt');
  umoci('gc', '--layout', layout);
  return `${layout}:${tag}`;
}

/**
 * skopeo with a bounded run time; resolves with stdout, rejects with stderr.
 * Asynchronous, so that servers in this process (the token server) answer it.
 */
export async function skopeo(args: string[], timeoutMs = 120_000): Promise<string> {
  try {
    return (await execFileAsync('skopeo', args, { encoding: 'utf8', timeout: timeoutMs })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')} failed: ${err.stderr ?? err.message}`);
  }
}

/** Pushes an OCI layout image to a registry. */
export async function pushImage(image: string, registryHost: string, name: string, opts: { certDir?: string; creds?: string } = {}): Promise<void> {
  const tls = opts.certDir === undefined ? ['--dest-tls-verify=false'] : ['--dest-cert-dir', opts.certDir];
  const creds = opts.creds === undefined ? [] : ['--dest-creds', opts.creds];
  await skopeo(['copy', ...tls, ...creds, `oci:${image}`, `docker://${registryHost}/${name}`]);
}

/** The manifest digest of an image, wherever it is (`oci:...` or `docker://...`). */
export async function digestOf(ref: string, extra: string[] = []): Promise<string> {
  return (await skopeo(['inspect', ...extra, '--format', '{{.Digest}}', ref])).trim();
}

export interface TokenServer {
  readonly realm: string;
  readonly service: string;
  readonly issuer: string;
  /** PEM bundle the registry trusts for token signatures. */
  readonly certFile: string;
  /** Token requests seen: [authorization header, scope]. */
  readonly requests: { authorization: string | undefined; scope: string | null }[];
  stop(): Promise<void>;
}

const execFileAsync = promisify(execFile);
const b64url = (data: Buffer | string) => Buffer.from(data).toString('base64url');

/**
 * A token server for the registry's `token` auth
 * (https://distribution.github.io/distribution/spec/auth/jwt/): it checks
 * Basic credentials and issues RS256 JWTs whose `x5c` header carries the
 * signing certificate, which the registry trusts through `rootcertbundle`.
 * With `anonymous`, requests without credentials get pull tokens too, as
 * Docker Hub's for public images; wrong credentials are still refused.
 */
export async function startTokenServer(dir: string, user: string, password: string, expiresIn = 300, anonymous = false): Promise<TokenServer> {
  mkdirSync(dir, { recursive: true });
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=token signer', '-keyout', keyFile, '-out', certFile], { stdio: 'pipe' });
  const key = createPrivateKey(readFileSync(keyFile));
  const der = new X509Certificate(readFileSync(certFile)).raw;
  const expected = 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64');
  const service = 'gateway-test-registry';
  const issuer = 'gateway-test-issuer';
  const requests: TokenServer['requests'] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scope = url.searchParams.get('scope');
    requests.push({ authorization: req.headers.authorization, scope });
    const pullOnly = anonymous && req.headers.authorization === undefined;
    if (req.headers.authorization !== expected && !pullOnly) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="token"' }).end();
      return;
    }
    const actions = (scope: string) => scope.split(':')[2].split(',').filter((a) => !pullOnly || a === 'pull');
    const access = scope === null ? [] : [{ type: scope.split(':')[0], name: scope.split(':')[1], actions: actions(scope) }];
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] };
    const claims = { iss: issuer, sub: user, aud: service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const signing = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const signature = createSign('RSA-SHA256').update(signing).sign(key);
    const token = `${signing}.${b64url(signature)}`;
    const body = JSON.stringify({ token, access_token: token, expires_in: expiresIn, issued_at: new Date().toISOString() });
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    certFile,
    requests,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
