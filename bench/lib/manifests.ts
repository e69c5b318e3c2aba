/**
 * Manifests of any size for the scenarios: realistic rule shapes, spread
 * over many domains, and the requests that hit them.
 */

export interface Workload {
  readonly manifest: { rules: Record<string, unknown>[] };
  /** autocannon requests, cycled through by each connection. */
  readonly requests: { method?: string; path: string; headers: Record<string, string> }[];
}

const OS = ['linux', 'darwin', 'windows'];

/** file-v1 rules: `/pkg<i>/{version}/pkg<i>-{os}.tar.gz` over up to 1,000 domains. */
export function fileRules(count: number, requestCount = 1000): Workload {
  const domains = Math.min(1000, Math.max(1, Math.ceil(count / 100)));
  const rules = Array.from({ length: count }, (_, i) => ({
    type: 'file-v1',
    domain: `dl${i % domains}.example.com`,
    'package-id': `pkg-${i}`,
    'incoming-path': `/pkg${i}/{version}/pkg${i}-{os}.tar.gz`,
    'outgoing-url': `https://github.com/org/pkg${i}/releases/download/v{version}/pkg${i}-{os}.tar.gz`,
  }));
  const step = Math.max(1, Math.floor(count / requestCount));
  const requests = Array.from({ length: Math.min(count, requestCount) }, (_, k) => {
    const i = (k * step + (k % 7)) % count;
    return { path: `/pkg${i}/1.${k % 10}.0/pkg${i}-${OS[k % 3]}.tar.gz`, headers: { host: `dl${i % domains}.example.com` } };
  });
  return { manifest: { rules }, requests };
}

export const DOCKER_UA = 'docker/27.3.1 go/go1.22.7 git-commit/41ca978 kernel/6.1 os/linux arch/amd64 UpstreamClient(Docker-Client/27.3.1 \\(linux\\))';

/** docker-v1 rules, pulled by a Docker user agent (redirected). */
export function dockerRules(count: number, requestCount = 1000): Workload {
  const rules = Array.from({ length: count }, (_, i) => ({
    type: 'docker-v1', domain: 'cr.example.com', 'package-id': `img-${i}`, 'repository-name': `org/img${i}`, registry: 'ghcr.io',
  }));
  const requests = Array.from({ length: Math.min(count, requestCount) }, (_, k) => {
    const i = (k * 9973) % count;
    return { path: `/v2/org/img${i}/manifests/1.${k % 5}`, headers: { host: 'cr.example.com', 'user-agent': DOCKER_UA } };
  });
  return { manifest: { rules }, requests };
}

/** python-v1 rules: one wheel per project. */
export function pythonRules(count: number): { rules: Record<string, unknown>[] } {
  return {
    rules: Array.from({ length: count }, (_, i) => ({
      type: 'python-v1', domain: 'py.example.com', 'package-id': `py-${i}`, 'package-name': `proj${i}`, version: '1.0.0',
      'file-name': `proj${i}-1.0.0-py3-none-any.whl`, 'backend-url': `https://files.example/proj${i}-1.0.0-py3-none-any.whl`,
      'hash-value': { type: 'sha256', hash: (i.toString(16) + 'a'.repeat(64)).slice(0, 64) }, 'requires-python': '>=3.8',
    })),
  };
}

/**
 * npm-v1 rules, one package each, whose tarballs are downloaded. Their
 * documents come from `registry`, a stand-in that serves one version each.
 */
export function npmRules(count: number, registry: string, requestCount = 1000): Workload {
  const rules = Array.from({ length: count }, (_, i) => ({
    type: 'npm-v1', domain: 'npm.example.com', 'package-id': `npm-${i}`, 'package-name': `npkg${i}`, registry,
  }));
  const requests = Array.from({ length: Math.min(count, requestCount) }, (_, k) => {
    const i = (k * 7919) % count;
    return { path: `/npkg${i}/-/npkg${i}-1.0.0.tgz`, headers: { host: 'npm.example.com', 'user-agent': 'npm/11.6.2 node/v24.11.1 linux x64 workspaces/false' } };
  });
  return { manifest: { rules }, requests };
}

/** The package document a stand-in registry serves for `npkg<i>`. */
export function npmDocument(name: string): string {
  return JSON.stringify({
    name,
    'dist-tags': { latest: '1.0.0' },
    versions: { '1.0.0': { name, version: '1.0.0', dist: { tarball: `https://registry.example/${name}/-/${name}-1.0.0.tgz`, integrity: 'sha512-' + 'A'.repeat(86) + '==' } } },
  });
}
