/**
 * Registry error answers (OCI distribution-spec, "Error codes"): a JSON body
 * `{"errors":[{code,message,detail}]}` that Docker clients print.
 * https://github.com/opencontainers/distribution-spec/blob/main/spec.md#error-codes
 */
import { ERRORS, type ErrorCode } from '../errors.ts';
import type { Answer } from '../http/answer.ts';
import type { Capture } from '../analytics/capture.ts';

/** True for `/v2` and everything under `/v2/`. */
export function isDockerPath(path: string): boolean {
  return path === '/v2' || path.startsWith('/v2/');
}

const OCI_CODES: Partial<Record<ErrorCode, string>> = {
  DOCKER_NAME_UNKNOWN: 'NAME_UNKNOWN',
  DOCKER_UNSUPPORTED: 'UNSUPPORTED',
  DOCKER_NAME_INVALID: 'NAME_INVALID',
  DOCKER_NOT_A_PULL: 'UNSUPPORTED',
  UPSTREAM_UNREACHABLE: 'UNAVAILABLE',
  UPSTREAM_TIMEOUT: 'UNAVAILABLE',
};

const HEADERS = { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' };
/** A 405 names the methods there are (RFC 9110 §15.5.6): pulls only. */
const READ_ONLY_HEADERS = { ...HEADERS, allow: 'GET, HEAD' };

/** The OCI error body for one of our codes. */
export function ociBody(code: ErrorCode): string {
  return JSON.stringify({ errors: [{ code: OCI_CODES[code] ?? code, message: ERRORS[code].message, detail: {} }] });
}

export function ociError(code: ErrorCode, capture: Capture | null = null): Answer {
  const { status } = ERRORS[code];
  return {
    status,
    outcome: status === 404 ? 'not-found' : status >= 500 ? 'upstream-error' : 'rejected',
    capture,
    error: code,
    headers: status === 405 ? READ_ONLY_HEADERS : HEADERS,
    body: ociBody(code),
  };
}

export function dockerNameUnknown(): Answer {
  return ociError('DOCKER_NAME_UNKNOWN');
}
