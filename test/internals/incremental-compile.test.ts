// A reload takes over the domains whose rules did not change (same text,
// same place in the manifest) and compiles the others; what it serves and
// the problems it reports are those of a full compile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadManifestText, type LoadResult } from '../../src/manifest/load-manifest.ts';
import { route } from '../../src/routing/route.ts';
import type { RoutingTable } from '../../src/routing/routing-table.ts';
import type { RouteServices } from '../../src/routing/route.ts';

const rule = (domain: string, name: string, target = `https://${name}.example/{v}`) => ({
  type: 'file-v1',
  domain,
  'package-id': name,
  'incoming-path': `/${name}/{v}`,
  'outgoing-url': target,
});

/** A second rule for the same fixed path is never used: a warning. */
const shadowed = (domain: string) => ({ type: 'file-v1', domain, 'package-id': 'p', 'incoming-path': '/x', 'outgoing-url': 'https://never.example/x' });

const manifest = (rules: unknown[]) => JSON.stringify({ rules }, null, 1);
/** Each domain: a rule, then one shadowed by an earlier rule for /x. */
const BASE = [
  rule('a.example', 'x'),
  shadowed('a.example'),
  shadowed('a.example'),
  rule('b.example', 'y'),
  shadowed('b.example'),
  shadowed('b.example'),
  rule('c.example', 'z'),
  shadowed('c.example'),
  shadowed('c.example'),
];

function locationOf(table: RoutingTable, host: string, path: string): string | undefined {
  const domain = table.domains.get(host);
  if (domain === undefined) return undefined;
  const answer = route(domain, { method: 'GET', path, query: '', authorization: undefined, userAgent: undefined, accept: undefined, acceptEncoding: undefined, ifNoneMatch: undefined }, {} as RouteServices);
  return answer.headers?.location;
}

async function load(rules: unknown[], previous: RoutingTable | null = null): Promise<LoadResult & { table: RoutingTable }> {
  const loaded = await loadManifestText(manifest(rules), undefined, previous);
  assert.notEqual(loaded.table, null, JSON.stringify(loaded.problems));
  return loaded as LoadResult & { table: RoutingTable };
}

test('unchanged domains are taken over, a changed one is compiled again', async () => {
  const first = await load(BASE);
  const changed = BASE.map((r, i) => (i === 3 ? rule('b.example', 'y', 'https://moved.example/{v}') : r));
  const second = await load(changed, first.table);
  assert.equal(second.table.domains.get('a.example'), first.table.domains.get('a.example'));
  assert.equal(second.table.domains.get('c.example'), first.table.domains.get('c.example'));
  assert.notEqual(second.table.domains.get('b.example'), first.table.domains.get('b.example'));
  assert.equal(locationOf(second.table, 'b.example', '/y/1'), 'https://moved.example/1');
  assert.equal(locationOf(second.table, 'a.example', '/x/1'), 'https://x.example/1');
  assert.deepEqual(second.table.counts, { 'file-v1': 9 });
  // The same warnings, in the same order, as a compile from scratch.
  const scratch = await load(changed);
  assert.deepEqual(second.problems.warnings, scratch.problems.warnings);
  assert.deepEqual(second.problems.warnings.map((w) => w.pointer), ['/rules/2', '/rules/5', '/rules/8']);
});

test('a rule moved to another place in the manifest compiles its domain again', async () => {
  const first = await load(BASE);
  // c.example's rules now come first: their indices (and warnings' pointers) changed, a's and b's too.
  const moved = [...BASE.slice(6), ...BASE.slice(0, 6)];
  const second = await load(moved, first.table);
  for (const d of ['a.example', 'b.example', 'c.example']) assert.notEqual(second.table.domains.get(d), first.table.domains.get(d), d);
  assert.deepEqual(second.problems.warnings, (await load(moved)).problems.warnings);
});

test('a rule that moves to another domain compiles both domains again', async () => {
  const first = await load(BASE);
  // Rule 1 was a.example's; it is now c.example's, at the same place.
  const moved = BASE.map((r, i) => (i === 1 ? shadowed('c.example') : r));
  const second = await load(moved, first.table);
  assert.notEqual(second.table.domains.get('a.example'), first.table.domains.get('a.example'));
  assert.notEqual(second.table.domains.get('c.example'), first.table.domains.get('c.example'));
  assert.equal(second.table.domains.get('b.example'), first.table.domains.get('b.example'));
  assert.deepEqual(second.problems.warnings, (await load(moved)).problems.warnings);
});

test('a rule lost at the end of the manifest compiles its domain again', async () => {
  const first = await load(BASE);
  const second = await load(BASE.slice(0, 8), first.table);
  assert.equal(second.table.domains.get('a.example'), first.table.domains.get('a.example'));
  assert.equal(second.table.domains.get('b.example'), first.table.domains.get('b.example'));
  assert.notEqual(second.table.domains.get('c.example'), first.table.domains.get('c.example'));
  assert.deepEqual(second.table.counts, { 'file-v1': 8 });
  // c.example's second rule for /x, which was shadowed, is gone.
  assert.deepEqual(second.problems.warnings.map((w) => w.pointer), ['/rules/2', '/rules/5']);
});

test('the same rules written differently (white space) are compiled again and serve the same', async () => {
  const first = await load(BASE);
  const compact = await loadManifestText(JSON.stringify({ rules: BASE }), undefined, first.table);
  assert.notEqual(compact.table, null);
  for (const d of ['a.example', 'b.example', 'c.example']) assert.notEqual(compact.table!.domains.get(d), first.table.domains.get(d), d);
  assert.equal(locationOf(compact.table!, 'c.example', '/z/2'), 'https://z.example/2');
});

test('a rule whose domain is guessed wrong from its text is served by its real domain', async () => {
  // The first `"domain": "..."` in the text is not the rule's: a field before it holds one, or the key is written twice (the last counts).
  const nested = (domain: string, decoy: string) => `{"note":{"domain":"${decoy}"},"type":"file-v1","domain":"${domain}","package-id":"n","incoming-path":"/n/{v}","outgoing-url":"https://n.example/{v}"}`;
  const twice = (domain: string, decoy: string) => `{"domain":"${decoy}","type":"file-v1","domain":"${domain}","package-id":"t","incoming-path":"/t/{v}","outgoing-url":"https://t.example/{v}"}`;
  const text = (extra: string[]) => `{"rules":[${[...BASE.map((r) => JSON.stringify(r)), ...extra].join(',')}]}`;
  const wrong = text([nested('b.example', 'a.example'), twice('c.example', 'a.example'), JSON.stringify(shadowed('b.example'))]);
  for (const previous of [null, (await load(BASE)).table]) {
    const loaded = await loadManifestText(wrong, undefined, previous);
    assert.notEqual(loaded.table, null, JSON.stringify(loaded.problems));
    assert.equal(locationOf(loaded.table!, 'b.example', '/n/1'), 'https://n.example/1');
    assert.equal(locationOf(loaded.table!, 'c.example', '/t/1'), 'https://t.example/1');
    assert.equal(locationOf(loaded.table!, 'a.example', '/n/1'), undefined);
    assert.equal(locationOf(loaded.table!, 'a.example', '/t/1'), undefined);
    assert.deepEqual(loaded.table!.counts, { 'file-v1': 12 });
    // Rule 11 is shadowed by b.example's first /x: precedence within b.example is kept.
    assert.deepEqual(loaded.problems.warnings.map((w) => w.pointer), ['/rules/2', '/rules/5', '/rules/8', '/rules/9/note', '/rules/11']);
  }
});

test('a domain removed is gone; an error anywhere rejects the whole manifest', async () => {
  const first = await load(BASE);
  const second = await load(BASE.slice(0, 6), first.table);
  assert.equal(second.table.domains.has('c.example'), false);
  assert.deepEqual(second.table.counts, { 'file-v1': 6 });
  const bad = await loadManifestText(manifest([...BASE, { type: 'file-v1', domain: 'b.example' }]), undefined, first.table);
  assert.equal(bad.table, null);
  assert.deepEqual(bad.problems.errors, (await loadManifestText(manifest([...BASE, { type: 'file-v1', domain: 'b.example' }]))).problems.errors);
  assert.ok(bad.problems.errors.length > 0);
  const withoutDomain = manifest([...BASE, { type: 'file-v1' }, 5]);
  const noDomain = await loadManifestText(withoutDomain, undefined, first.table);
  assert.equal(noDomain.table, null);
  assert.deepEqual([...new Set(noDomain.problems.errors.map((e) => e.pointer))], ['/rules/9', '/rules/10']);
  assert.deepEqual(noDomain.problems.errors, (await loadManifestText(withoutDomain)).problems.errors);
});
