// Both file-v1 matchers (the trie and the linear reference) run the whole
// conformance table and must give the same rule and values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileIndexBuilder, type FileMatcher } from '../../src/routing/file-index.ts';
import { parseIncoming } from '../../src/templates/incoming-template.ts';
import { LinearFileMatcher } from './linear-file-matcher.ts';
import { MATCHER_CASES } from './file-matcher-cases.ts';

type Build = (templates: readonly string[]) => FileMatcher<number>;

const MATCHERS: Record<string, Build> = {
  trie: (templates) => {
    const b = new FileIndexBuilder<number>();
    templates.forEach((t, i) => b.add(parseIncoming(t), i));
    return b.build();
  },
  linear: (templates) => new LinearFileMatcher(templates.map((t, i) => ({ rule: i, order: i, template: parseIncoming(t) }))),
};

for (const [name, build] of Object.entries(MATCHERS)) {
  test(`file-v1 conformance: ${name}`, async (t) => {
    for (const c of MATCHER_CASES) {
      await t.test(c.name, () => {
        const matcher = build(c.templates);
        for (const [path, query, expected, values] of c.requests) {
          const m = matcher.match(path, query);
          const label = `${path}${query === '' ? '' : '?' + query}`;
          assert.equal(m === null ? null : m.leaf.rule, expected, label);
          if (m !== null && values !== undefined) {
            const named = Object.fromEntries(m.leaf.variables.map((v, i) => [v.name, m.values[i]]));
            assert.deepEqual(named, values, label);
          }
        }
      });
    }
  });
}

test('the trie refuses additions after build', () => {
  const b = new FileIndexBuilder<number>();
  b.add(parseIncoming('/a'), 0);
  b.build();
  assert.throws(() => b.add(parseIncoming('/b'), 1));
});
