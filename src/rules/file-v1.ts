/**
 * file-v1: RFC 6570 URL template redirects (SPEC §5). Compiled into the
 * domain's file trie; this module holds the per-rule part: the outgoing
 * template and the answer for a match.
 */
import type { FileCapture } from '../analytics/capture.ts';
import { emptyOk, errorAnswer, redirect, type Answer } from '../http/answer.ts';
import type { FileV1Rule } from '../manifest/types.ts';
import { parseIncoming, type IncomingTemplate } from '../templates/incoming-template.ts';
import { buildTarget, compileOutgoing, expressionCache, type OutgoingUrl } from './outgoing-url.ts';
import { toVariables, type CapturedVariable } from './path-variables.ts';
import type { ProblemSink } from '../manifest/problems.ts';
import { InternPool } from '../routing/intern-pool.ts';

/** What a matched file-v1 rule needs at request time (the template itself lives in the trie). */
export interface CompiledFileV1 {
  readonly packageId: string;
  readonly outgoing: OutgoingUrl | null;
  /** The incoming template's variables, by position (the trie names its values with them). */
  readonly variables: readonly CapturedVariable[];
}

/** The compiled rule, and its incoming template for the domain's trie. */
export function compileFileV1(rule: FileV1Rule, at: string, problems: ProblemSink, pool = new InternPool()): { compiled: CompiledFileV1; incoming: IncomingTemplate } | null {
  let incoming: IncomingTemplate;
  let outgoing: OutgoingUrl | null = null;
  try {
    incoming = parseIncoming(rule['incoming-path'], expressionCache(pool));
  } catch (e) {
    problems.error(`${at}/incoming-path`, (e as Error).message);
    return null;
  }
  // A request path starts with "/": only a {+var}, which may hold one, can stand before it.
  const { source } = incoming;
  if (!source.startsWith('/') && !source.startsWith('{+')) problems.warn(`${at}/incoming-path`, `never matches: a request path starts with "/", and "${source}" does not`);
  if (rule['outgoing-url'] != null) {
    try {
      outgoing = compileOutgoing(rule['outgoing-url'], pool);
    } catch (e) {
      problems.error(`${at}/outgoing-url`, (e as Error).message);
      return null;
    }
    for (const name of outgoing.variables) {
      if (!incoming.variables.some((v) => v.name === name)) {
        problems.error(`${at}/outgoing-url`, `variable "${name}" is not bound by incoming-path "${incoming.source}"`);
        return null;
      }
    }
  }
  const variables = pool.get('captured', incoming.variables.map((v) => (v.raw ? '+' : '') + v.name).join(','), () => incoming.variables);
  return { compiled: { packageId: rule['package-id'], outgoing, variables }, incoming };
}

/** Hot path. The answer for a trie match. */
export function answerFileV1(rule: CompiledFileV1, values: readonly string[], query: string): Answer {
  const vars = toVariables(rule.variables, values);
  if (typeof vars === 'string') return errorAnswer(vars);
  return answerFile(rule.packageId, rule.outgoing, vars, query);
}

/** Shared by file-v1 and file-v2: redirect to the expanded target, or 200 without one. */
export function answerFile(
  packageId: string | null,
  outgoing: OutgoingUrl | null,
  variables: Record<string, string>,
  query: string,
): Answer {
  if (outgoing === null) {
    const capture: FileCapture = { type: 'file', package: packageId, url: null, variables };
    return emptyOk(capture, (body) => ({ ...capture, body }));
  }
  const target = buildTarget(outgoing, variables, query);
  if (target === 'BAD_ENCODING' || target === 'BAD_TARGET') return errorAnswer(target);
  const capture: FileCapture = { type: 'file', package: packageId, url: target, variables };
  return redirect(target, capture, (body) => ({ ...capture, body }));
}
