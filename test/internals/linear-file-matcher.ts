/**
 * The reference file-v1 matcher: every template compiled to one anchored
 * regex, all of them sorted by the precedence rule of SPEC §3, tried one by
 * one. Slow and obviously right; the trie must agree with it on every case
 * of file-matcher-cases.ts.
 */
import type { FileIndexMatch, FileMatcher } from '../../src/routing/file-index.ts';
import type { TrieRule } from '../../src/routing/file-trie.ts';
import { compareRanks, type IncomingTemplate, type Unit } from '../../src/templates/incoming-template.ts';

/** A rule with its whole template (the reference matcher keeps it). */
interface Leaf<R> {
  readonly rule: R;
  readonly order: number;
  readonly template: IncomingTemplate;
}

const VAR = '((?:[A-Za-z0-9\\-._~]|%[0-9A-Fa-f]{2})+)';
const PLUS = "((?:[A-Za-z0-9\\-._~:/?#\\[\\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)";

function wholeRegExp(t: IncomingTemplate): RegExp {
  const units = t.units.map((u) =>
    u.tokens
      .map((tok) => (tok.kind === 'literal' ? tok.text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&') : tok.kind === 'var' ? VAR : PLUS))
      .join(''),
  );
  return new RegExp(`^${units.join('\\/')}$`);
}

function literalText(u: Unit): string {
  return u.tokens.map((t) => (t.kind === 'literal' ? t.text : '')).join('');
}

/** SPEC §3 for two templates: unit by unit, literal segments first, then by rank. */
function precedence<R>(a: Leaf<R>, b: Leaf<R>): number {
  const ua = a.template.units;
  const ub = b.template.units;
  for (let i = 0; i < Math.max(ua.length, ub.length); i++) {
    const x = ua[i];
    const y = ub[i];
    if (x === undefined || y === undefined) break;
    if (x.kind === 'literal' && y.kind === 'literal') {
      if (literalText(x) === literalText(y)) continue;
      break;
    }
    if (x.kind === 'literal') return -1;
    if (y.kind === 'literal') return 1;
    const r = compareRanks(x, y);
    if (r !== 0) return r;
    if (x.shape !== y.shape || x.kind === 'tail') break;
  }
  return a.order - b.order;
}

export class LinearFileMatcher<R extends TrieRule> implements FileMatcher<R> {
  readonly #entries: { leaf: Leaf<R>; regex: RegExp }[];

  constructor(leaves: Leaf<R>[]) {
    this.#entries = [...leaves].sort(precedence).map((leaf) => ({ leaf, regex: wholeRegExp(leaf.template) }));
  }

  match(path: string, query: string): FileIndexMatch<R> | null {
    if (query !== '') {
      const m = this.#first(path + '?' + query, true);
      if (m !== null) return { ...m, mergeQuery: '' };
    }
    const m = this.#first(path, false);
    return m === null ? null : { ...m, mergeQuery: query };
  }

  #first(subject: string, withQuery: boolean) {
    for (const { leaf, regex } of this.#entries) {
      if (leaf.template.withQuery !== withQuery) continue;
      const m = regex.exec(subject);
      if (m === null) continue;
      const values = m.slice(1);
      const vars = leaf.template.variables;
      if (vars.some((v, i) => vars.findIndex((w) => w.name === v.name) !== i && values[vars.findIndex((w) => w.name === v.name)] !== values[i])) continue;
      return { rule: leaf.rule, values };
    }
    return null;
  }
}
