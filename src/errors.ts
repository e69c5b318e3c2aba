/**
 * Every error the gateway answers with, in one table: a stable code, the HTTP
 * status and a default message. Tests assert the code, never the text.
 * The same table is documented in README.md ("Error codes"); a test checks
 * that both agree.
 */
export const ERRORS = {
  NOT_FOUND: { status: 404, message: 'no rule matches this request' },
  BAD_ENCODING: { status: 400, message: 'malformed percent-encoding in the request target' },
  BAD_VARIABLE: { status: 400, message: 'a path variable holds a control character or a dot segment' },
  BAD_TARGET: { status: 400, message: 'the redirect target built from this request is not allowed' },
  DUPLICATE_HOST: { status: 400, message: 'the request has more than one Host header field' },
  MISSING_HOST: { status: 400, message: 'an HTTP/1.1 request needs a Host header field' },
  URL_TOO_LONG: { status: 414, message: 'the request target is too long' },
  BODY_TOO_LARGE: { status: 413, message: 'the request body is larger than the configured limit' },
  UNSUPPORTED_ENCODING: { status: 415, message: 'the request body is in a content coding the gateway cannot decode' },
  BAD_CONTENT_CODING: { status: 400, message: 'the request body cannot be decoded as its Content-Encoding says' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'this method is not allowed here' },
  UNAUTHORIZED: { status: 401, message: 'a valid bearer token is required' },
  NOT_ACCEPTABLE: { status: 406, message: 'no representation matches the Accept header or the format parameter' },
  READ_ONLY: { status: 405, message: 'this gateway is read only' },
  UPSTREAM_UNREACHABLE: { status: 502, message: 'the upstream could not be reached' },
  UPSTREAM_TIMEOUT: { status: 504, message: 'the upstream did not answer in time' },
  DOCKER_NAME_UNKNOWN: { status: 404, message: 'repository name not known to registry' },
  DOCKER_UNSUPPORTED: { status: 405, message: 'the operation is unsupported' },
  DOCKER_NAME_INVALID: { status: 400, message: 'invalid repository name' },
  DOCKER_NOT_A_PULL: { status: 400, message: 'not a pull: after the repository name, manifests/<tag or digest>, blobs/<digest>, tags/list or referrers/<digest>' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

/** Problem found in a manifest, located by a JSON pointer (RFC 6901). */
export interface ManifestProblem {
  pointer: string;
  message: string;
}

/** Thrown at load time only (never at request time) when a manifest is unusable. */
export class ManifestError extends Error {
  readonly code = 'MANIFEST_INVALID';
  readonly problems: readonly ManifestProblem[];
  constructor(problems: readonly ManifestProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ManifestError';
    this.problems = problems;
  }
}

/** `<json-pointer>: <message>`, as `validate` prints it (like `nginx -t`). */
export function formatProblem(p: ManifestProblem): string {
  return `${p.pointer === '' ? '/' : p.pointer}: ${p.message}`;
}

/** RFC 6901 escaping of one reference token. */
export function pointerToken(token: string | number): string {
  return String(token).replaceAll('~', '~0').replaceAll('/', '~1');
}
