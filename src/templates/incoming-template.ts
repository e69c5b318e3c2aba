/**
 * Incoming templates (file-v1 `incoming-path`): literal text, `{name}` and
 * `{+name}` only. This module turns one into the units the file trie indexes:
 * `/`-separated segments, and a final "tail" from the segment holding the
 * first `{+name}` on (a `{+name}` may match `/`, so it cannot be split).
 */
import { encodeNonPrintable, upperTriplets } from './percent.ts';
import { parseTemplate, TemplateSyntaxError, type ExpressionCache } from './uri-template.ts';
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

/**
 * Parse an incoming template; throws TemplateSyntaxError (load time only).
 * One pass: literal text is cut at each `/` into units until the first
 * `{+name}`, which starts the tail (the rest of the template, uncut).
 */
export function parseIncoming(source: string, cache?: ExpressionCache): IncomingTemplate {
  const units: Unit[] = [];
  const variables: CapturedVariable[] = [];
  let withQuery = false;
  // The unit being read.
  let tokens: Token[] = [];
  let shape = '';
  let hasVariable = false;
  let tail = false;
  for (const part of parseTemplate(source, cache)) {
    if (part.kind === 'literal') {
      // `/файл-{v}` matches `/%D1%84%D0%B0%D0%B9%D0%BB-1.0`, as clients send it (requests' triplets are in upper case too).
      const text = upperTriplets(encodeNonPrintable(part.raw));
      if (text.includes('?')) withQuery = true;
      if (tail) {
        tokens.push({ kind: 'literal', text });
        shape += shapeText(text);
        continue;
      }
      for (let start = 0; ; ) {
        const slash = text.indexOf('/', start);
        const piece = slash === -1 ? text.slice(start) : text.slice(start, slash);
        if (piece !== '') {
          tokens.push({ kind: 'literal', text: piece });
          shape += shapeText(piece);
        }
        if (slash === -1) break;
        units.push({ kind: hasVariable ? 'segment' : 'literal', tokens, shape });
        tokens = [];
        shape = '';
        hasVariable = false;
        start = slash + 1;
      }
      continue;
    }
    if (part.operator !== '' && part.operator !== '+') {
      throw new TemplateSyntaxError(`incoming templates allow only {name} and {+name}, not "{${part.operator}...}"`);
    }
    if (part.vars.length !== 1 || part.vars[0].prefix !== null || part.vars[0].explode) {
      throw new TemplateSyntaxError('incoming templates allow one plain variable per expression');
    }
    const plus = part.operator === '+';
    const name = part.vars[0].name;
    tokens.push({ kind: plus ? 'plus' : 'var', name });
    shape += plus ? '{+}' : '{}';
    hasVariable = true;
    tail ||= plus;
    variables.push({ name, raw: plus });
  }
  units.push({ kind: tail ? 'tail' : hasVariable ? 'segment' : 'literal', tokens, shape });
  return { source, withQuery, units, variables };
}

/** Literal text in a shape: `{` doubled, so that it never reads as a variable. */
function shapeText(text: string): string {
  return text.includes('{') ? text.replaceAll('{', '{{') : text;
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
