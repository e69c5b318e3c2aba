/**
 * docker-v1 and docker-v2 (SPEC §4): pulls through the OCI Distribution API.
 * https://github.com/opencontainers/distribution-spec/blob/main/spec.md
 *
 * Each pull request is redirected to the registry when the client is known
 * to follow registry redirects, and proxied otherwise (or always, with
 * `always-proxy`, or when it carries Basic credentials, which a redirect
 * would send to another host or, with most clients, drop).
 */
import type { DockerCapture } from '../analytics/capture.ts';
import { redirect, type Answer } from '../http/answer.ts';
import type { DockerV1Rule, DockerV2Rule } from '../manifest/types.ts';
import type { ProblemSink } from '../manifest/problems.ts';
import type { RouteRequest, RouteServices } from '../routing/route.ts';
import { compileImagePattern } from './docker-pattern.ts';
import { isDockerPath, ociError } from './docker-errors.ts';

export interface DockerTarget {
  readonly packageId: string | null;
  readonly ruleId: string | null;
  readonly registry: string;
  readonly alwaysProxy: boolean;
  /** `https://<registry>`, the redirect prefix, built once. */
  readonly origin: string;
}

export interface DockerIndex {
  /** docker-v1 rules by exact repository name. */
  readonly byName: ReadonlyMap<string, DockerTarget>;
  /** docker-v2 patterns, in manifest order. */
  readonly patterns: readonly { readonly regex: RegExp; readonly target: DockerTarget }[];
  /** The domain's first Docker rule: answers the `/v2/` version check. */
  readonly first: DockerTarget;
}

/** Docker Hub's registry API host, and the names that mean it. */
const HUB = 'registry-1.docker.io';
const HUB_ALIASES = new Set(['docker.io', 'registry.hub.docker.com', 'index.docker.io', HUB]);

export function normalizeRegistry(registry: string): string {
  const r = registry.toLowerCase();
  return HUB_ALIASES.has(r) ? HUB : r;
}

function target(rule: DockerV1Rule | DockerV2Rule, packageId: string | null, ruleId: string | null): DockerTarget {
  const registry = normalizeRegistry(rule.registry);
  return { packageId, ruleId, registry, alwaysProxy: rule['always-proxy'] === true, origin: `https://${registry}` };
}

/**
 * Docker Hub keeps official images under `library/` (`docker pull nginx`
 * asks it for library/nginx) and has nothing under a bare name, while a
 * client pulling from the gateway's domain adds no `library/`: a rule for
 * a name of one segment on Hub never serves. A warning, as Scarf loads it.
 */
function warnOneSegmentOnHub(t: DockerTarget, field: 'repository-name' | 'pattern', value: string, at: string, domain: string, problems: ProblemSink): void {
  if (t.registry !== HUB || value.includes('/')) return;
  const none = field === 'pattern' ? 'no image of one segment, which this pattern matches' : `no image "${value}"`;
  const pulled = field === 'pattern' ? '<image>' : value;
  problems.warn(`${at}/${field}`, `Docker Hub has ${none}: official images are under library/; write "library/${value}" and pull ${domain}/library/${pulled}`);
}

export function compileDockerV1(rule: DockerV1Rule, at: string, problems: ProblemSink): DockerTarget {
  const t = target(rule, rule['package-id'], null);
  warnOneSegmentOnHub(t, 'repository-name', rule['repository-name'], at, rule.domain, problems);
  return t;
}

export function compileDockerV2(rule: DockerV2Rule, at: string, problems: ProblemSink): { regex: RegExp; target: DockerTarget } | null {
  let regex: RegExp;
  try {
    regex = compileImagePattern(rule.pattern);
  } catch (e) {
    problems.error(`${at}/pattern`, (e as Error).message);
    return null;
  }
  const t = target(rule, null, rule['rule-id']);
  warnOneSegmentOnHub(t, 'pattern', rule.pattern, at, rule.domain, problems);
  // A request for a name with one gets 400 NAME_INVALID (the grammar below): it never serves.
  const upper = /[A-Z]/.exec(rule.pattern.replace(/\\./g, ''));
  if (upper !== null) problems.warn(`${at}/pattern`, `"${upper[0]}" never serves: image names are in lower case, and a pull of one with "${upper[0]}" gets 400 NAME_INVALID`);
  return { regex, target: t };
}

const KINDS = new Set(['manifests', 'blobs', 'tags']);

/*
 * The Distribution API's grammar (distribution-spec, "Pulling manifests"
 * and "Pulling blobs"): a name is lower-case components separated by `.`,
 * `_`, `__` or dashes, joined by `/`; a tag is at most 128 word characters,
 * dots and dashes, not starting with either; a digest is `algorithm:encoded`.
 * None of them can be a `.` or `..` segment or hold a `%`: the backend gets
 * the repository the rule names, not one a dot segment or an escaped slash
 * leads to once the URL is normalized (here, or by the registry's router,
 * whose redirect the proxy would follow with its credentials). The
 * manifest schema holds docker-v1 names to the same grammar; a docker-v2
 * glob's `*` matches any characters within a segment.
 *
 * V8's backtracking engine runs them: each repetition starts with a
 * character the one before cannot match (a separator after letters and
 * digits), so a failing input is given up in time linear in its length
 * (test/regex-safety.test.ts), and a match costs 20–40 ns where the
 * linear-time engine takes 1.6–3.8 µs.
 */
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[A-Za-z0-9=_-]+$/;

/**
 * Whether `kind/reference` is a pull: a manifest by tag or digest, a blob
 * by digest, the tag list, the referrers of a manifest by its digest.
 */
function isPull(kind: string, reference: string): boolean {
  if (kind === 'manifests') return TAG.test(reference) || DIGEST.test(reference);
  if (kind === 'blobs' || kind === 'referrers') return DIGEST.test(reference);
  return reference === 'list';
}

/** Hot path. The Docker answer, or null to let later kinds try. */
export function answerDocker(index: DockerIndex, r: RouteRequest, services: RouteServices): Answer | null {
  if (!isDockerPath(r.path)) return null;
  if (r.method !== 'GET' && r.method !== 'HEAD') return ociError('DOCKER_UNSUPPORTED');
  if (r.path === '/v2' || r.path === '/v2/') return pull(index.first, '', null, r, services);
  if (r.path === '/v2/_catalog') return { status: 404, outcome: 'not-found', capture: null };
  // /v2/<name>/<kind>/<reference>: <name> is everything before the first
  // segment that is a kind, and has at least one segment.
  const segments = r.path.slice(4).split('/');
  let k = 1;
  while (k < segments.length && !KINDS.has(segments[k])) k++;
  if (k + 1 >= segments.length) {
    // The OCI 1.1 referrers API, `<name>/referrers/<digest>` (signatures,
    // SBOMs). Not a kind of SPEC §4's: `referrers` is taken as one only
    // before the last segment, so that names holding it keep their meaning.
    if (segments.length < 3 || segments[segments.length - 2] !== 'referrers') return null;
    k = segments.length - 2;
  }
  const name = segments.slice(0, k).join('/');
  // A rule claims the request: it is answered only if it is a pull of a
  // well-formed name. A docker-v1 name is one (the schema checked it at load).
  let t = index.byName.get(name);
  if (t === undefined) {
    for (const p of index.patterns) if (p.regex.test(name)) { t = p.target; break; }
    if (t === undefined) return null;
    if (!NAME.test(name)) return ociError('DOCKER_NAME_INVALID');
  }
  if (k + 2 !== segments.length || !isPull(segments[k], segments[k + 1])) return ociError('DOCKER_NOT_A_PULL');
  return pull(t, name, segments[k + 1], r, services);
}

function pull(t: DockerTarget, image: string, reference: string | null, r: RouteRequest, services: RouteServices): Answer {
  const capture: DockerCapture = { type: 'docker', package: t.packageId, rule: t.ruleId, image, reference, registry: t.registry };
  const pathAndQuery = r.query === '' ? r.path : `${r.path}?${r.query}`;
  const basic = r.authorization !== undefined && /^basic\s/i.test(r.authorization);
  if (!t.alwaysProxy && !basic && services.followsRegistryRedirects(r.userAgent)) {
    return redirect(t.origin + pathAndQuery, capture);
  }
  return {
    status: 200,
    outcome: 'proxy',
    capture,
    stream: (req, res, clientIp) => services.registryProxy.forward(req, res, t.registry, image, pathAndQuery, clientIp),
  };
}
