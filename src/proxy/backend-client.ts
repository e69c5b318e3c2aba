/**
 * The registry proxy's HTTP/1.1 client (RFC 9112): GET and HEAD without a
 * body, over kept-alive connections (backend-connection.ts), parked per
 * backend between requests.
 *
 * Why not node:http's client (through http-proxy-3, which the proxy used
 * until the seventh session): it allocates a buffer for every socket read,
 * and the garbage collections this sets off mark the whole routing table;
 * a 1 GiB blob took 2.0 s of CPU and 100 MB of memory (3.9 s with 100k
 * rules), a manifest about 430 µs. Here: 0.5 s, 2 MB and about 100 µs
 * (bench/results.md). No library reads into reused buffers.
 *
 * Failures reject with a BackendError before the head, and cut the
 * client's response off after it; a kept-alive connection that fails before
 * answering is retried once on a new one (GET and HEAD are idempotent). A
 * client that leaves before the head (`signal`), the connection still
 * opening included, rejects with ClientLeft and closes the connection at
 * once.
 */
import { ClientLeft, StaleConnection } from './backend-error.ts';
import { Connection, type BackendAnswer, type ConnectionOptions } from './backend-connection.ts';
import { requestHead } from './http1-wire.ts';

export { BackendError, ClientLeft } from './backend-error.ts';
export { ReadBudget, type BackendAnswer } from './backend-connection.ts';

/** Idle connections kept per backend (node:http's Agent keeps 256). */
const MAX_IDLE = 256;

export class BackendClient {
  readonly #options: ConnectionOptions;
  readonly #idle = new Map<string, Connection[]>();

  constructor(options: ConnectionOptions) {
    this.#options = options;
  }

  /** Sends GET or HEAD for `url` with `fields` (name, value, name, value, ...; Host is added); `signal` aborts when the client has left. */
  async request(url: URL, method: 'GET' | 'HEAD', fields: readonly string[], signal: AbortSignal): Promise<BackendAnswer> {
    const head = requestHead(url, method, fields);
    if (signal.aborted) throw new ClientLeft();
    const reused = this.#takeIdle(url.origin);
    if (reused !== null) {
      try {
        return await reused.exchange(head, method, signal);
      } catch (e) {
        // The backend closed it while idle: try once more, on a new one.
        if (!(e instanceof StaleConnection)) throw e;
      }
    }
    const fresh = await Connection.open(url, this.#options, (c) => this.#keep(url.origin, c), signal);
    return fresh.exchange(head, method, signal);
  }

  /** Closes the idle connections. */
  close(): void {
    for (const list of this.#idle.values()) for (const c of list) c.destroy();
    this.#idle.clear();
  }

  #takeIdle(origin: string): Connection | null {
    const list = this.#idle.get(origin);
    let c = list?.pop() ?? null;
    while (c !== null && !c.usable) c = list?.pop() ?? null;
    if (list?.length === 0) this.#idle.delete(origin);
    c?.wake();
    return c;
  }

  #keep(origin: string, c: Connection): void {
    let list = this.#idle.get(origin);
    if (list === undefined) this.#idle.set(origin, (list = []));
    if (list.length >= MAX_IDLE) return c.destroy();
    list.push(c);
    c.sleep(() => {
      const at = list.indexOf(c);
      if (at >= 0) list.splice(at, 1);
      if (list.length === 0 && this.#idle.get(origin) === list) this.#idle.delete(origin);
    });
  }
}
