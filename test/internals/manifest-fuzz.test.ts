// Seeded random manifests: rules of every kind with every field, mutated
// (values of other types and odd strings, fields removed and added, kinds
// swapped, rules repeated or dropped, text cut short), half of them as
// reloads of the manifest before. Loading never throws; a manifest is
// either compiled or rejected with errors, never both; every problem names
// a place in the manifest by a JSON pointer that leads there (for a
// missing field: the object that lacks it); and a reload, which takes
// unchanged domains over, ends as a compile from scratch does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadManifestText, type LoadResult } from '../../src/manifest/load-manifest.ts';
import type { RoutingTable } from '../../src/routing/routing-table.ts';
import { seededRandom } from '../helpers/random.ts';

const MANIFESTS = 4000;

const hash = { type: 'sha256', hash: 'ab'.repeat(32) };
const SEEDS: readonly Record<string, unknown>[] = [
  { type: 'file-v1', domain: 'dl.example.com', 'package-id': 'tool', 'incoming-path': '/tool-{version}.{ext}?os={os}', 'outgoing-url': 'https://files.example/{version}/tool.{ext}{?os}' },
  { type: 'file-v1', domain: 'dl.example.com', 'package-id': 'all', 'incoming-path': '/files/{+rest}', 'outgoing-url': 'https://files.example/{+rest}' },
  { type: 'file-v2', domain: 'dl.example.com', 'package-id': 'rx', 'rule-id': 'r1', 'incoming-path': '^/releases/(?<os>linux|darwin)/(?<version>[0-9.]+)$', 'outgoing-url': 'https://files.example/v{version}/{os}.tgz' },
  { type: 'docker-v1', domain: 'cr.example.com', 'package-id': 'img', 'repository-name': 'org/app', registry: 'ghcr.io', 'always-proxy': false },
  { type: 'docker-v2', domain: 'cr.example.com', 'rule-id': 'glob', pattern: 'tools/{cli,srv-*}', registry: 'docker.io', 'always-proxy': true },
  {
    type: 'python-v1', domain: 'py.example.com', 'package-id': 'py', 'package-name': 'Tool_Name', 'file-name': 'tool_name-1.0-py3-none-any.whl', version: '1.0',
    'backend-url': 'https://files.example/tool_name-1.0-py3-none-any.whl', 'hash-value': hash, 'gpg-sig': false, 'requires-python': '>=3.8',
    yanked: 'broken', size: 1234, 'upload-time': '2026-01-01T00:00:00Z', 'core-metadata': hash,
  },
  { type: 'python-v1', domain: 'py.example.com', 'package-id': 'idx', 'package-name': 'other', 'file-name': 'other-2.0.tar.gz', version: '2.0', 'backend-url': 'https://files.example/other-2.0.tar.gz', 'backend-simple-index-url': 'https://pypi.example/simple/' },
  { type: 'npm-v1', domain: 'npm.example.com', 'package-id': 'npm', 'package-name': '@scope/tool', registry: 'https://registry.example' },
  { type: 'catch-all-v1', domain: 'www.example.com', 'package-id': 'site', 'redirect-target-domain': 'example.github.io' },
  { type: 'telemetry-v1', domain: 'dl.example.com', 'package-id': 'tel', 'incoming-path': '/telemetry', 'access-tokens': ['t0ken'] },
  { type: 'pixel-v1', domain: 'dl.example.com', 'package-id': 'px', path: '/pixel.gif' },
];
const KINDS = [...new Set(SEEDS.map((r) => r.type as string))];
const KEYS = [...new Set(SEEDS.flatMap((r) => Object.keys(r)))];

/** The value a JSON pointer leads to, or undefined when it leads nowhere. */
function resolve(doc: unknown, pointer: string): unknown {
  if (pointer === '') return doc;
  if (!pointer.startsWith('/')) return undefined;
  let here: unknown = doc;
  for (const raw of pointer.slice(1).split('/')) {
    const token = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (here === null || typeof here !== 'object' || !Object.hasOwn(here, token)) return undefined;
    here = (here as Record<string, unknown>)[token];
  }
  return here;
}

/** A manifest's rules and the table they compiled to. */
interface Reload {
  readonly rules: Record<string, unknown>[];
  readonly table: RoutingTable;
}

/** What a load decided: compiled or not, its problems, its rules by kind, its domains. */
function outcome({ table, problems }: LoadResult) {
  return { errors: problems.errors, warnings: problems.warnings, counts: table?.counts ?? null, domains: table === null ? null : [...table.domains.keys()].sort() };
}

test('random manifests and reloads: loading never throws, a manifest is compiled or rejected, every problem points into it, a reload ends as a fresh compile', { timeout: 120_000 }, async () => {
  // Each seed is a valid rule, so that an unchanged one compiles.
  for (const seed of SEEDS) assert.deepEqual((await loadManifestText(JSON.stringify({ rules: [seed] }))).problems.errors, [], JSON.stringify(seed));
  const rnd = seededRandom(20261128);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)];
  const chars = [...'abcXYZ019-_./:@?&=#%{}()[]*+,;$^|\\~! "\'<>é☃😀\u0000\t\n'];
  const text = () => Array.from({ length: Math.floor(rnd() * 24) }, () => pick(chars)).join('');
  const odd = (): unknown =>
    pick<() => unknown>([
      () => null, () => true, () => 0, () => -1, () => 1.5, () => 1e308, () => '', () => text(), () => text(), () => 'x'.repeat(5000),
      () => [], () => [text()], () => ({}), () => ({ [text()]: text() }), () => '{', () => '{+a}{#b}{/c*}{;d:3}', () => '(?<x>a+)+$', () => '(', () => '%zz',
    ])();
  /** One change to a rule, in place. */
  const mutate = (r: Record<string, unknown>): void => {
    const keys = Object.keys(r);
    const p = rnd();
    if (p < 0.45 && keys.length > 0) r[pick(keys)] = odd();
    else if (p < 0.6 && keys.length > 0) delete r[pick(keys)];
    else if (p < 0.75) r[rnd() < 0.7 ? pick(KEYS) : text()] = odd();
    else if (p < 0.9) r.type = rnd() < 0.9 ? pick(KINDS) : odd();
    else r.domain = pick(['', 'DL.Example.COM.', 'xn--bcher-kva.example', 'bücher.example', '127.0.0.1', '[::1]', 'a..b', text()]);
  };
  let compiled = 0;
  let rejected = 0;
  let reloads = 0;
  /** The last manifest that compiled, which the next one may be a reload of. */
  let last: Reload | null = null;
  for (let i = 0; i < MANIFESTS; i++) {
    // Half the time after a manifest that compiled: a reload, its rules changed a little.
    const previous: Reload | null = last !== null && rnd() < 0.5 ? last : null;
    const rules: Record<string, unknown>[] = previous?.rules.map((r) => structuredClone(r)) ?? Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => structuredClone(pick(SEEDS)));
    // None to three changes, anywhere: a quarter of the manifests keep every rule valid.
    for (let n = Math.floor(rnd() * 4); n > 0; n--) mutate(pick(rules));
    if (rnd() < 0.1) rules.push(structuredClone(pick(rules)));
    if (rnd() < 0.1 && rules.length > 1) rules.splice(Math.floor(rnd() * rules.length), 1);
    const whole = rnd() >= 0.05;
    const manifest: unknown = whole ? { rules } : pick<unknown>([{ rules: odd() }, odd(), { rules, extra: odd() }]);
    let json = JSON.stringify(manifest) ?? 'undefined';
    if (rnd() < 0.03) json = json.slice(0, Math.floor(rnd() * json.length));
    const replay: string = `manifest ${i}${previous === null ? '' : ' (a reload)'}: ${json.slice(0, 2000)}`;
    let result: LoadResult;
    try {
      result = await loadManifestText(json, undefined, previous?.table ?? null);
    } catch (e) {
      assert.fail(`${replay}\nthrew ${(e as Error).stack}`);
    }
    const { table, problems }: LoadResult = result;
    assert.equal(table === null, problems.errors.length > 0, `${replay}\ncompiled ${table !== null} with errors ${JSON.stringify(problems.errors)}`);
    if (table === null) rejected++;
    else compiled++;
    if (previous !== null) {
      // A reload, which takes unchanged domains over, ends as a compile from scratch does.
      reloads++;
      assert.deepEqual(outcome(result), outcome(await loadManifestText(json)), replay);
    }
    if (table !== null && whole) last = { rules, table };
    let parsed: unknown;
    try {
      parsed = JSON.parse(json);
    } catch {
      // Not JSON: the one error says so, with the empty pointer.
      assert.deepEqual(problems.errors.map((p) => p.pointer), [''], replay);
      continue;
    }
    for (const p of [...problems.errors, ...problems.warnings]) {
      assert.ok(typeof p.message === 'string' && p.message !== '', `${replay}\nno message: ${JSON.stringify(p)}`);
      assert.ok(resolve(parsed, p.pointer) !== undefined, `${replay}\npointer ${JSON.stringify(p.pointer)} leads nowhere (${p.message})`);
    }
  }
  // Both outcomes, and reloads, were exercised many times.
  assert.ok(compiled > 500 && rejected > 500 && reloads > 500, `compiled ${compiled}, rejected ${rejected}, reloads ${reloads}`);
});
