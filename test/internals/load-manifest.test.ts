// Errors of manifests that are not valid JSON, small and large (a large
// one is parsed in a worker thread, not on the event loop): the message is
// JSON.parse's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadManifestText } from '../../src/manifest/load-manifest.ts';

function jsonError(text: string): string {
  try {
    JSON.parse(text);
  } catch (e) {
    return `not valid JSON: ${(e as Error).message}`;
  }
  throw new Error('valid JSON');
}

const rules = (n: number) =>
  JSON.stringify({ rules: Array.from({ length: n }, (_, i) => ({ type: 'file-v1', domain: 'd.example', 'package-id': `p${i}`, 'incoming-path': `/p${i}/{v}`, 'outgoing-url': 'https://x.example/{v}' })) });

for (const [name, n] of [['small', 10], ['large (over 1 MiB)', 20_000]] as const) {
  test(`a ${name} manifest cut short is rejected with JSON.parse's message`, async () => {
    const whole = rules(n);
    const cut = whole.slice(0, whole.length - 100);
    const { table, problems, cutOff } = await loadManifestText(cut);
    assert.equal(table, null);
    assert.deepEqual(problems.errors, [{ pointer: '', message: jsonError(cut) }]);
    assert.equal(cutOff, true);
  });
}

test('every prefix of a manifest, the empty one included, is cut off; other broken JSON is not', async () => {
  const whole = JSON.stringify({ rules: [{ type: 'file-v1', domain: 'd.example', 'package-id': 'p', 'incoming-path': '/p/{v}', 'outgoing-url': 'https://x.example/{v}', note: [true, null, 1.5e3, 'é\\"'] }] }, null, 2);
  for (let i = 0; i < whole.length; i++) {
    const { table, cutOff } = await loadManifestText(whole.slice(0, i));
    assert.ok(table === null && cutOff === true, `cut at ${i}`);
  }
  for (const broken of ['{"rules": [],}', '{"rules": [1,]}', '{"rules": []} x', '{"rules": [}  ', 'nope', "{'rules': []}"]) {
    const { table, cutOff } = await loadManifestText(broken);
    assert.ok(table === null && cutOff !== true, broken);
  }
});

test('valid JSON of another shape is reported by the schema', async () => {
  const { table, problems } = await loadManifestText(JSON.stringify({ rules: { a: 1 } }));
  assert.equal(table, null);
  assert.equal(problems.errors[0]?.pointer, '/rules');
});

test('a domain name in Unicode is refused with its ASCII form, which clients send as Host', async () => {
  const rule = (domain: string) => ({ type: 'pixel-v1', domain, 'package-id': 'p' });
  const { problems } = await loadManifestText(JSON.stringify({ rules: [rule('Bücher.example'), rule('dl.example.com:8080')] }));
  assert.deepEqual(problems.errors.map((p) => [p.pointer, / here "(.*)"$/.exec(p.message)?.[1] ?? null]), [
    ['/rules/0/domain', 'xn--bcher-kva.example'],
    ['/rules/1/domain', null],
  ]);
});
