/** How a request to a backend failed: the registry proxy answers 504 or 502 for it. */
export type BackendFailure = 'timeout' | 'unreachable';

/** A backend failed (before its answer's head, or during its body), or sent something that is not HTTP/1.1. */
export class BackendError extends Error {
  readonly failure: BackendFailure;
  constructor(failure: BackendFailure, message: string, cause?: unknown) {
    super(message, { cause });
    this.failure = failure;
  }
}

/** An error's message, with its cause's: node's fetch says only "fetch failed", and why (refused, not resolved, a certificate) is its cause. */
export function withCause(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const cause = e instanceof Error ? e.cause : undefined;
  return cause instanceof Error ? `${message}: ${cause.message}` : message;
}

/** The client left before the backend's answer began: the request to the backend is given up. */
export class ClientLeft extends Error {
  constructor() {
    super('the client left before the backend answered');
  }
}

/** A kept-alive connection failed before any byte of the answer: the request may go again on a new one. */
export class StaleConnection extends Error {}
