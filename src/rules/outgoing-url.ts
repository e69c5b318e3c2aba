/**
 * The redirect target of file-v1 and file-v2 rules: an RFC 6570 template
 * (`outgoing-url`) expanded with the captured variables, then the request's
 * query merged in (SPEC §5).
 *
 * Safety: a variable must never move the redirect to another origin. When the
 * template starts with a literal `scheme://host/`, expansion can only change
 * what follows, so nothing is checked per request. Otherwise (a variable in
 * the authority, or a template that is all variable) the expanded URL is
 * parsed and must be http(s), without userinfo, on a host that ends with the
 * literal text the template puts after its last authority variable.
 */
import type { ErrorCode } from '../errors.ts';
import { InternPool } from '../routing/intern-pool.ts';
import { mergeQuery } from '../http/query-merge.ts';
import { asciiHost } from '../templates/percent.ts';
import { compactTemplate, expandTemplate, parseTemplate, templateVariables, type CompiledTemplate, type ExpressionCache, type TemplatePart } from '../templates/uri-template.ts';

export interface OutgoingUrl {
  readonly parts: CompiledTemplate;
  readonly variables: readonly string[];
  /** null when the origin is fixed by literal text; else the required host suffix ('' for any). */
  readonly hostSuffix: string | null;
}

const FIXED_ORIGIN = /^https?:\/\/[^/?#@{}]+[/?#]/i;

/** Parse at load time; throws TemplateSyntaxError, or Error for a non-absolute target. */
export function compileOutgoing(source: string, pool = new InternPool()): OutgoingUrl {
  // A literal host name past ASCII in its ASCII form: expansion would percent-encode it into another name.
  const parts = parseTemplate(asciiHost(source), expressionCache(pool));
  const first = parts[0];
  const lead = first?.kind === 'literal' ? first.raw : '';
  let hostSuffix: string | null = null;
  if (!FIXED_ORIGIN.test(lead) && !/^https?:\/\/[^/?#@{}]+$/i.test(source)) {
    if (lead !== '' && !/^https?:\/\//i.test(lead)) {
      throw new Error('must be an absolute http:// or https:// URL template');
    }
    hostSuffix = authoritySuffix(parts);
  }
  const names = templateVariables(parts);
  return {
    parts: compactTemplate(parts),
    variables: pool.get('names', names.join(','), () => names),
    hostSuffix,
  };
}

/** The manifest's parsed expressions, shared by all its templates. */
export function expressionCache(pool: InternPool): ExpressionCache {
  return pool.get('templates', 'expressions', (): ExpressionCache => new Map());
}

/** The literal text after the last variable inside the authority, up to its end. */
function authoritySuffix(parts: readonly TemplatePart[]): string {
  let suffix = '';
  let first = true;
  for (const p of parts) {
    if (p.kind === 'expression') {
      suffix = '';
      first = false;
      continue;
    }
    const raw = first ? p.raw.replace(/^https?:\/\//i, '') : p.raw;
    first = false;
    const end = raw.search(/[/?#]/);
    suffix += end === -1 ? raw : raw.slice(0, end);
    if (end !== -1) break;
  }
  return suffix.replace(/:\d*$/, '').toLowerCase();
}

/** Hot path. The redirect target, or the error code that rejects the request. */
export function buildTarget(out: OutgoingUrl, vars: Readonly<Record<string, string>>, query: string): string | ErrorCode {
  const expanded = expandTemplate(out.parts, vars);
  const target = query === '' ? expanded : mergeQuery(expanded, query);
  if (target === null) return 'BAD_ENCODING';
  if (out.hostSuffix !== null && !allowedOrigin(target, out.hostSuffix)) return 'BAD_TARGET';
  return target;
}

function allowedOrigin(target: string, hostSuffix: string): boolean {
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return false;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return false;
  if (url.username !== '' || url.password !== '') return false;
  return url.hostname.endsWith(hostSuffix);
}
