/**
 * Incoming templates (file-v1 `incoming-path`): literal text, `{name}` and
 * `{+name}` only. This module turns one into the units the file trie indexes:
 * `/`-separated segments, and a final "tail" from the segment holding the
 * first `{+name}` on (a `{+name}` may match `/`, so it cannot be split).
 */
import { parseTemplate, TemplateSyntaxError } from './uri-template.ts';
import type { CapturedVariable } from '../rules/path-variables.ts';

export type Token =
  | { readonly kind: 'literal'; readonly text: string }
  | { readonly kind: 'var'; readonly name: string }
  | { readonly kind: 'plus'; readonly name: string };

/** One indexable unit of a template. */
export interface Unit {
  /** `literal`: a whole segment of plain text; `segment`: has `{var}`s; `tail`: the rest, from a `{+var}` on. */
  readonly kind: 'literal' | 'segment' | 'tail';
  readonly tokens: readonly Token[];
  /** Names erased (`tool-{}.tgz`, `{+}/x`): units of the same shape share a trie node. */
  readonly shape: string;
}

export interface IncomingTemplate {
  readonly source: string;
  /** Matched against path plus query when the template has a `?`. */
  readonly withQuery: boolean;
  readonly units: readonly Unit[];
  /** Variables in order of appearance; `raw` for `{+name}` (kept as sent). */
  readonly variables: readonly CapturedVariable[];
}

/** Parse an incoming template; throws TemplateSyntaxError (load time only). */
export function parseIncoming(source: string): IncomingTemplate {
  const tokens: Token[] = [];
  for (const part of parseTemplate(source)) {
    if (part.kind === 'literal') {
      tokens.push({ kind: 'literal', text: part.raw });
      continue;
    }
    if (part.operator !== '' && part.operator !== '+') {
      throw new TemplateSyntaxError(`incoming templates allow only {name} and {+name}, not "{${part.operator}...}"`);
    }
    if (part.vars.length !== 1 || part.vars[0].prefix !== null || part.vars[0].explode) {
      throw new TemplateSyntaxError('incoming templates allow one plain variable per expression');
    }
    tokens.push({ kind: part.operator === '+' ? 'plus' : 'var', name: part.vars[0].name });
  }
  return {
    source,
    withQuery: tokens.some((t) => t.kind === 'literal' && t.text.includes('?')),
    units: toUnits(tokens),
    variables: tokens.flatMap((t) => (t.kind === 'literal' ? [] : [{ name: t.name, raw: t.kind === 'plus' }])),
  };
}

function toUnits(tokens: readonly Token[]): Unit[] {
  const units: Unit[] = [];
  let current: Token[] = [];
  let i = 0;
  for (; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.kind === 'plus') break;
    if (t.kind === 'var') {
      current.push(t);
      continue;
    }
    const pieces = t.text.split('/');
    for (let p = 0; p < pieces.length; p++) {
      if (p > 0) {
        units.push(unit(current, false));
        current = [];
      }
      if (pieces[p] !== '') current.push({ kind: 'literal', text: pieces[p] });
    }
  }
  if (i < tokens.length) {
    // The segment holding the first {+var}, and everything after it.
    units.push(unit([...current, ...tokens.slice(i)], true));
  } else {
    units.push(unit(current, false));
  }
  return units;
}

function unit(tokens: readonly Token[], tail: boolean): Unit {
  const shape = tokens.map((t) => (t.kind === 'literal' ? t.text.replaceAll('{', '{{') : t.kind === 'plus' ? '{+}' : '{}')).join('');
  const kind = tail ? 'tail' : tokens.some((t) => t.kind !== 'literal') ? 'segment' : 'literal';
  return { kind, tokens, shape };
}

/** RFC 3986 unreserved characters or `%XX`: what `{name}` matches (RFC 6570 §3.2.2). */
const VAR_CHARS = '(?:[A-Za-z0-9\\-._~]|%[0-9A-Fa-f]{2})+';
/** Unreserved, reserved or `%XX`: what `{+name}` matches (RFC 6570 §3.2.3). */
const PLUS_CHARS = "(?:[A-Za-z0-9\\-._~:/?#\\[\\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})+";

/** What a unit compiles to: `exec` gives the whole match then one value per variable, or null. */
export interface UnitMatcher {
  exec(subject: string): readonly string[] | null;
}

const VAR_ONLY = new RegExp(`^${VAR_CHARS}$`);

/**
 * The most common unit, `literal{var}literal` in one segment, without a
 * regex: prefix and suffix compared, the middle checked. With one variable
 * there is only one way to split, so this matches exactly what the regex would.
 */
class OneVariableSegment implements UnitMatcher {
  readonly #prefix: string;
  readonly #suffix: string;
  constructor(prefix: string, suffix: string) {
    this.#prefix = prefix;
    this.#suffix = suffix;
  }
  exec(s: string): readonly string[] | null {
    const end = s.length - this.#suffix.length;
    if (end <= this.#prefix.length || !s.startsWith(this.#prefix) || !s.endsWith(this.#suffix)) return null;
    const value = s.slice(this.#prefix.length, end);
    return VAR_ONLY.test(value) ? [s, value] : null;
  }
}

/**
 * Compile a `segment` or `tail` unit into a matcher: one `{var}` between
 * literals needs no regex; anything else is an anchored regex whose groups
 * are the variables in order. Greedy groups give "an earlier variable takes the
 * longest run that still lets the rest match". With two or more variables a
 * backtracking engine could take polynomial time on a crafted path, so those
 * use V8's linear-time engine (flag `l`, enabled in linear-regexp.ts).
 */
export function unitMatcher(u: Unit, linear: (source: string) => RegExp): UnitMatcher {
  const variables = u.tokens.filter((t) => t.kind !== 'literal');
  if (u.kind === 'segment' && variables.length === 1 && variables[0].kind === 'var') {
    const at = u.tokens.indexOf(variables[0]);
    const text = (tokens: readonly Token[]) => tokens.map((t) => (t.kind === 'literal' ? t.text : '')).join('');
    return new OneVariableSegment(text(u.tokens.slice(0, at)), text(u.tokens.slice(at + 1)));
  }
  let source = '^';
  let vars = 0;
  for (const t of u.tokens) {
    if (t.kind === 'literal') source += escapeRegExp(t.text);
    else {
      vars++;
      source += t.kind === 'plus' ? `(${PLUS_CHARS})` : `(${VAR_CHARS})`;
    }
  }
  source += '$';
  return vars > 1 ? linear(source) : new RegExp(source);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * Precedence between two units at the same place (RFC-free, SPEC §3): at the
 * first position where they differ, literal text beats `{var}` beats `{+var}`
 * beats the end of the unit. Returns 0 for units of equal rank.
 */
export function compareRanks(a: Unit, b: Unit): number {
  return compareShapes(a.shape, b.shape);
}

/** compareRanks on the units' shapes, which keep exactly what ranks them. */
export function compareShapes(a: string, b: string): number {
  let i = 0;
  let j = 0;
  for (;;) {
    // The shorter one has ended: "end" ranks after every token.
    if (i >= a.length || j >= b.length) return (i >= a.length ? 1 : 0) - (j >= b.length ? 1 : 0);
    const x = shapeToken(a, i);
    const y = shapeToken(b, j);
    if (x.rank !== y.rank) return x.rank - y.rank;
    i += x.length;
    j += y.length;
  }
}

const LITERAL_BRACE = { rank: 0, length: 2 };
const LITERAL_CHAR = { rank: 0, length: 1 };
const VAR = { rank: 1, length: 2 };
const PLUS = { rank: 2, length: 3 };

/** The token of a shape at `i`: `{{` (a literal `{`), `{}`, `{+}` or one literal character. */
function shapeToken(shape: string, i: number): { rank: number; length: number } {
  if (shape[i] !== '{') return LITERAL_CHAR;
  const next = shape[i + 1];
  return next === '{' ? LITERAL_BRACE : next === '+' ? PLUS : VAR;
}
