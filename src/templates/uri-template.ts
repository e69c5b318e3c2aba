/**
 * RFC 6570 URI templates: parsing and expansion (levels 1 to 4).
 * https://www.rfc-editor.org/rfc/rfc6570
 *
 * A template is parsed once, when the manifest is compiled, into literal
 * parts and expressions; `compactTemplate` encodes the literals (§3.1:
 * characters outside unreserved/reserved are percent-encoded, so a Location
 * header never carries raw non-ASCII or control characters), and expansion
 * is then joins.
 */
import { encodeReserved, encodeUnreserved } from './percent.ts';

/** One variable of an expression: `name`, `name:3` (prefix) or `name*` (explode). */
export interface VarSpec {
  readonly name: string;
  readonly prefix: number | null;
  readonly explode: boolean;
}

/** An operator's expansion behaviour, RFC 6570 Appendix A table. */
interface Operator {
  readonly first: string;
  readonly sep: string;
  readonly named: boolean;
  readonly ifEmpty: string;
  readonly allowReserved: boolean;
}

const OPERATORS: Readonly<Record<string, Operator>> = {
  '': { first: '', sep: ',', named: false, ifEmpty: '', allowReserved: false },
  '+': { first: '', sep: ',', named: false, ifEmpty: '', allowReserved: true },
  '.': { first: '.', sep: '.', named: false, ifEmpty: '', allowReserved: false },
  '/': { first: '/', sep: '/', named: false, ifEmpty: '', allowReserved: false },
  ';': { first: ';', sep: ';', named: true, ifEmpty: '', allowReserved: false },
  '?': { first: '?', sep: '&', named: true, ifEmpty: '=', allowReserved: false },
  '&': { first: '&', sep: '&', named: true, ifEmpty: '=', allowReserved: false },
  '#': { first: '#', sep: ',', named: false, ifEmpty: '', allowReserved: true },
};

export interface Expression {
  readonly kind: 'expression';
  /** `''` for simple string expansion, else one of `+ # . / ; ? &`. */
  readonly operator: string;
  readonly vars: readonly VarSpec[];
}

export interface Literal {
  readonly kind: 'literal';
  /** The literal as written in the template (encoded when expanded, RFC 6570 §3.1). */
  readonly raw: string;
}

export type TemplatePart = Literal | Expression;

/** A parsed template kept for expansion only: literals as their encoded text. */
export type CompiledTemplate = readonly (string | Expression)[];

/** Literals as they appear in an expansion (RFC 6570 §3.1), encoded once. */
export function compactTemplate(parts: readonly TemplatePart[]): CompiledTemplate {
  return parts.map((p) => (p.kind === 'literal' ? encodeReserved(p.raw) : p));
}

/** A value a variable can hold (RFC 6570 §2.3); captures are always strings. */
export type TemplateValue = string | readonly string[] | Readonly<Record<string, string>> | undefined;

export type Variables = Readonly<Record<string, TemplateValue>>;

export class TemplateSyntaxError extends Error {
  readonly code = 'TEMPLATE_SYNTAX';
}

const VARNAME = /^(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})(?:\.?(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2}))*$/;

/**
 * Parsed expressions by their text, shared by the templates of one manifest
 * (which repeats `{version}` in every rule): parsed once, held once.
 */
export type ExpressionCache = Map<string, Expression>;

/** Parse a template; throws TemplateSyntaxError (load time only). */
export function parseTemplate(template: string, cache?: ExpressionCache): readonly TemplatePart[] {
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < template.length) {
    const open = template.indexOf('{', i);
    const close = template.indexOf('}', i);
    if (close !== -1 && (open === -1 || close < open)) {
      throw new TemplateSyntaxError(`unmatched "}" at offset ${close}`);
    }
    if (open === -1) {
      parts.push(literal(template.slice(i)));
      break;
    }
    if (open > i) parts.push(literal(template.slice(i, open)));
    if (close === -1) throw new TemplateSyntaxError(`unclosed "{" at offset ${open}`);
    const body = template.slice(open + 1, close);
    let e = cache?.get(body);
    if (e === undefined) {
      e = expression(body, open);
      cache?.set(body, e);
    }
    parts.push(e);
    i = close + 1;
  }
  return parts;
}

function literal(raw: string): Literal {
  return { kind: 'literal', raw };
}

function expression(body: string, offset: number): Expression {
  if (body === '') throw new TemplateSyntaxError(`empty expression at offset ${offset}`);
  let operator = '';
  if ('+#./;?&'.includes(body[0])) {
    operator = body[0];
    body = body.slice(1);
  } else if ('=,!@|'.includes(body[0])) {
    throw new TemplateSyntaxError(`reserved operator "${body[0]}" at offset ${offset}`);
  }
  const vars = body.split(',').map((spec): VarSpec => {
    let name = spec;
    let prefix: number | null = null;
    let explode = false;
    if (name.endsWith('*')) {
      explode = true;
      name = name.slice(0, -1);
    } else {
      const colon = name.indexOf(':');
      if (colon !== -1) {
        const digits = name.slice(colon + 1);
        if (!/^[1-9][0-9]{0,3}$/.test(digits)) {
          throw new TemplateSyntaxError(`bad prefix modifier "${spec}" at offset ${offset}`);
        }
        prefix = Number(digits);
        name = name.slice(0, colon);
      }
    }
    if (!VARNAME.test(name)) throw new TemplateSyntaxError(`bad variable name "${name}" at offset ${offset}`);
    return { name, prefix, explode };
  });
  return { kind: 'expression', operator, vars };
}

/** Names of all variables a parsed template uses, in order of appearance. */
export function templateVariables(parts: readonly (TemplatePart | string)[]): string[] {
  const names: string[] = [];
  for (const p of parts) if (typeof p !== 'string' && p.kind === 'expression') for (const v of p.vars) names.push(v.name);
  return names;
}

/** Expand a parsed template (RFC 6570 §3.2). Undefined variables expand to nothing. */
export function expandTemplate(parts: readonly (TemplatePart | string)[], vars: Variables): string {
  let out = '';
  for (const p of parts) out += typeof p === 'string' ? p : p.kind === 'literal' ? encodeReserved(p.raw) : expandExpression(p, vars);
  return out;
}

function expandExpression(expr: Expression, vars: Variables): string {
  const op = OPERATORS[expr.operator];
  const encode = op.allowReserved ? encodeReserved : encodeUnreserved;
  if (expr.vars.length === 1) {
    // Hot path: one variable with a string value (`{version}`), as below without the list.
    const spec = expr.vars[0];
    const value = vars[spec.name];
    if (value === undefined) return '';
    if (typeof value === 'string' && spec.prefix === null) {
      const v = encode(value);
      return op.first + (op.named ? spec.name + (v === '' ? op.ifEmpty : '=' + v) : v);
    }
  }
  const items: string[] = [];
  for (const spec of expr.vars) {
    const value = vars[spec.name];
    if (value === undefined) continue;
    if (typeof value === 'string') {
      const v = encode(spec.prefix === null ? value : Array.from(value).slice(0, spec.prefix).join(''));
      items.push(op.named ? spec.name + (v === '' ? op.ifEmpty : '=' + v) : v);
      continue;
    }
    const pairs: [string, string][] = isList(value)
      ? value.map((v) => ['', v])
      : Object.entries(value);
    if (pairs.length === 0) continue; // §2.3: empty lists and maps are undefined
    if (!spec.explode) {
      const joined = pairs
        .map(([k, v]) => (isList(value) ? encode(v) : `${encode(k)},${encode(v)}`))
        .join(',');
      items.push(op.named ? spec.name + (joined === '' ? op.ifEmpty : '=' + joined) : joined);
    } else if (isList(value)) {
      for (const [, v] of pairs) {
        const e = encode(v);
        items.push(op.named ? spec.name + (e === '' ? op.ifEmpty : '=' + e) : e);
      }
    } else {
      for (const [k, v] of pairs) {
        const e = encode(v);
        items.push(encode(k) + (op.named && e === '' ? op.ifEmpty : '=' + e));
      }
    }
  }
  return items.length === 0 ? '' : op.first + items.join(op.sep);
}

function isList(value: TemplateValue): value is readonly string[] {
  return Array.isArray(value);
}
