/**
 * Turning captured path text into template variables, with the checks that
 * keep a crafted request from steering a redirect: malformed encoding, control
 * characters (header injection) and dot segments (path traversal) are refused.
 */
import type { ErrorCode } from '../errors.ts';
import { hasControl, hasDotSegment, percentDecode } from '../templates/percent.ts';

export interface CapturedVariable {
  readonly name: string;
  /** `{+name}` keeps the value as sent (RFC 6570 §3.2.3); `{name}` decodes it. */
  readonly raw: boolean;
}

/** Hot path. A record of variables, or the error code that rejects the request. */
export function toVariables(
  vars: readonly CapturedVariable[],
  values: readonly (string | undefined)[],
): Record<string, string> | ErrorCode {
  const out: Record<string, string> = {};
  for (let i = 0; i < vars.length; i++) {
    const value = values[i];
    if (value === undefined) continue;
    const decoded = percentDecode(value);
    if (decoded === null) return 'BAD_ENCODING';
    if (hasControl(decoded) || hasDotSegment(decoded)) return 'BAD_VARIABLE';
    out[vars[i].name] = vars[i].raw ? value : decoded;
  }
  return out;
}
