// Both file-v1 matchers (the trie and the linear reference) run the whole
// conformance table and must give the same rule and values.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileIndexBuilder, type FileMatcher } from '../../src/routing/file-index.ts';
import { parseIncoming, type IncomingTemplate } from '../../src/templates/incoming-template.ts';
import { LinearFileMatcher } from './linear-file-matcher.ts';
import { MATCHER_CASES } from './file-matcher-cases.ts';

/** Rule `id` is the template's index in the case. */
interface Rule {
  readonly id: number;
  readonly variables: IncomingTemplate['variables'];
}

type Build = (templates: readonly string[]) => FileMatcher<Rule>;

function rule(template: IncomingTemplate, id: number): Rule {
  return { id, variables: template.variables };
}

const MATCHERS: Record<string, Build> = {
  trie: (templates) => {
    const b = new FileIndexBuilder<Rule>();
    templates.map((t) => parseIncoming(t)).forEach((t, i) => b.add(t, rule(t, i)));
    return b.build();
  },
  linear: (templates) =>
    new LinearFileMatcher(templates.map((t) => parseIncoming(t)).map((template, i) => ({ rule: rule(template, i), order: i, template }))),
};

for (const [name, build] of Object.entries(MATCHERS)) {
  test(`file-v1 conformance: ${name}`, async (t) => {
    for (const c of MATCHER_CASES) {
      await t.test(c.name, () => {
        const matcher = build(c.templates);
        for (const [path, query, expected, values] of c.requests) {
          const m = matcher.match(path, query);
          const label = `${path}${query === '' ? '' : '?' + query}`;
          assert.equal(m === null ? null : m.rule.id, expected, label);
          if (m !== null && values !== undefined) {
            const named = Object.fromEntries(m.rule.variables.map((v, i) => [v.name, m.values[i]]));
            assert.deepEqual(named, values, label);
          }
        }
      });
    }
  });
}

test('the trie refuses additions after build', () => {
  const b = new FileIndexBuilder<Rule>();
  const a = parseIncoming('/a');
  b.add(a, rule(a, 0));
  b.build();
  const c = parseIncoming('/b');
  assert.throws(() => b.add(c, rule(c, 1)));
});
