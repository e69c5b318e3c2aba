/**
 * catch-all-v1 (SPEC §5): everything on the domain that no other rule takes.
 * Redirects to the same path and query on another domain, re-encoded, or
 * answers 200 when no target domain is set.
 */
import type { FileCapture } from '../analytics/capture.ts';
import { emptyOk, errorAnswer, redirect, type Answer } from '../http/answer.ts';
import type { CatchAllRule } from '../manifest/types.ts';
import { normalizePath, normalizeQuery } from '../templates/percent.ts';

export interface CompiledCatchAll {
  readonly packageId: string;
  /** `https://<target-domain>`, or null to answer 200. */
  readonly origin: string | null;
}

export function compileCatchAll(rule: CatchAllRule): CompiledCatchAll {
  const target = rule['redirect-target-domain'];
  return { packageId: rule['package-id'], origin: target == null || target === '' ? null : `https://${target.toLowerCase()}` };
}

const NO_VARIABLES: Readonly<Record<string, string>> = Object.freeze({});

/** Hot path. */
export function answerCatchAll(rule: CompiledCatchAll, path: string, query: string): Answer {
  if (rule.origin === null) {
    const capture: FileCapture = { type: 'file', package: rule.packageId, url: null, variables: NO_VARIABLES };
    return emptyOk(capture, (body) => ({ ...capture, body }));
  }
  const p = normalizePath(path);
  const q = normalizeQuery(query);
  if (p === null || q === null) return errorAnswer('BAD_ENCODING');
  const url = rule.origin + p + (q === '' ? '' : '?' + q);
  const capture: FileCapture = { type: 'file', package: rule.packageId, url, variables: NO_VARIABLES };
  return redirect(url, capture, (body) => ({ ...capture, body }));
}
