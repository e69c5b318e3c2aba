/**
 * telemetry-v1 (SPEC §7): POST endpoint whose body is a stream of JSON
 * events. Access tokens are held as SHA-256 digests (a manifest may write
 * them as `sha256:<hex>`) and compared in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { TelemetryCapture } from '../analytics/capture.ts';
import { emptyOk, errorAnswer, type Answer } from '../http/answer.ts';
import type { TelemetryRule } from '../manifest/types.ts';
import type { ProblemSink } from '../manifest/problems.ts';

export interface CompiledTelemetry {
  readonly packageId: string;
  /** null: anyone may post; []: nobody; else digests of the accepted tokens. */
  readonly digests: readonly Buffer[] | null;
}

const SHA256_TOKEN = /^sha256:([0-9a-fA-F]{64})$/;

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export function compileTelemetry(rule: TelemetryRule, at: string, problems: ProblemSink): CompiledTelemetry {
  // The path is compared with the request's path, which holds no query.
  const path = rule['incoming-path'];
  if (path.includes('?')) problems.warn(`${at}/incoming-path`, `never matches: it is compared with a request's path, without its query, and "${path}" holds a "?"`);
  const tokens = rule['access-tokens'];
  if (tokens == null) return { packageId: rule['package-id'], digests: null };
  const digests = tokens.map((t, i) => {
    if (t.startsWith('sha256:') && !SHA256_TOKEN.test(t)) {
      problems.error(`${at}/access-tokens/${i}`, 'a sha256: token must be followed by 64 hex digits');
    }
    const m = SHA256_TOKEN.exec(t);
    return m === null ? sha256(t) : Buffer.from(m[1], 'hex');
  });
  return { packageId: rule['package-id'], digests };
}

/** True when the Authorization header carries one of the accepted tokens. */
function authorized(rule: CompiledTelemetry, authorization: string | undefined): boolean {
  if (rule.digests === null) return true;
  if (authorization === undefined) return false;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (m === null) return false;
  const digest = sha256(m[1]);
  // Compare with every token, without stopping early: the time taken does
  // not tell which token, or how much of one, was right.
  let ok = false;
  for (const d of rule.digests) ok = timingSafeEqual(d, digest) || ok;
  return ok;
}

export function answerTelemetry(rule: CompiledTelemetry, authorization: string | undefined): Answer {
  const base: TelemetryCapture = { type: 'telemetry', package: rule.packageId, event: null };
  if (!authorized(rule, authorization)) {
    return errorAnswer('UNAUTHORIZED', base, { 'www-authenticate': 'Bearer realm="telemetry"' });
  }
  return emptyOk(base, (event) => ({ ...base, event }));
}
