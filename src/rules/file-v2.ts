/**
 * file-v2: regular-expression redirects (SPEC §5). The expression is searched
 * in the request path; named groups are the template variables. It runs on
 * V8's linear-time engine, so no manifest regex can stall the server; what
 * that engine cannot run (backreferences, lookaround) is rejected at load.
 */
import { errorAnswer, type Answer } from '../http/answer.ts';
import type { FileV2Rule } from '../manifest/types.ts';
import type { ProblemSink } from '../manifest/problems.ts';
import { linearRegExp } from '../templates/linear-regexp.ts';
import { encodeNonPrintable } from '../templates/percent.ts';
import { compileOutgoing, type OutgoingUrl } from './outgoing-url.ts';
import { answerFile } from './file-v1.ts';
import { toVariables, type CapturedVariable } from './path-variables.ts';

export interface CompiledFileV2 {
  readonly packageId: string | null;
  readonly regex: RegExp;
  readonly outgoing: OutgoingUrl | null;
  readonly captured: readonly CapturedVariable[];
}

export function compileFileV2(rule: FileV2Rule, at: string, problems: ProblemSink): CompiledFileV2 | null {
  // Python's (?P<name>...) spelling is accepted too.
  const source = rule['incoming-path'].replace(/\(\?P</g, '(?<');
  let regex: RegExp;
  try {
    regex = linearRegExp(source);
  } catch (e) {
    const reason = /linear time/.test((e as Error).message)
      ? 'uses a construct that cannot run in linear time (backreference or lookaround)'
      : (e as Error).message;
    problems.error(`${at}/incoming-path`, `invalid regular expression: ${reason}`);
    return null;
  }
  // A request path starts with "/": an expression anchored before other literal text never matches.
  if (/^\^[\w~-]/.test(source)) problems.warn(`${at}/incoming-path`, `never matches: a request path starts with "/", and "${source}" requires it to start with "${source[1]}"`);
  const nonAscii = /[^\x00-\x7f]/u.exec(source);
  if (nonAscii !== null) {
    const [ch] = nonAscii;
    problems.warn(`${at}/incoming-path`, `holds "${ch}", which a request path never does: clients send it percent-encoded (${encodeNonPrintable(ch)}), and the expression is searched in the path as sent`);
  }
  const names = [...source.matchAll(/\(\?<([A-Za-z_$][\w$]*)>/g)].map((m) => m[1]);
  let outgoing: OutgoingUrl | null = null;
  if (rule['outgoing-url'] != null) {
    try {
      outgoing = compileOutgoing(rule['outgoing-url']);
    } catch (e) {
      problems.error(`${at}/outgoing-url`, (e as Error).message);
      return null;
    }
    for (const name of outgoing.variables) {
      if (!names.includes(name)) {
        problems.error(`${at}/outgoing-url`, `variable "${name}" is not a named group of incoming-path`);
        return null;
      }
    }
  }
  return {
    packageId: rule['package-id'] ?? null,
    regex,
    outgoing,
    captured: names.map((name) => ({ name, raw: false })),
  };
}

/** Hot path. The answer of the first file-v2 rule that matches, or null. */
export function matchFileV2(rules: readonly CompiledFileV2[], path: string, query: string): Answer | null {
  for (const rule of rules) {
    const m = rule.regex.exec(path);
    // An empty match does not count (SPEC §5).
    if (m === null || m[0] === '') continue;
    const groups = m.groups ?? {};
    // Every variable the target uses must be bound, or the rule does not match.
    if (rule.outgoing !== null && rule.outgoing.variables.some((v) => groups[v] === undefined)) continue;
    const vars = toVariables(rule.captured, rule.captured.map((c) => groups[c.name]));
    if (typeof vars === 'string') return errorAnswer(vars);
    return answerFile(rule.packageId, rule.outgoing, vars, query);
  }
  return null;
}
