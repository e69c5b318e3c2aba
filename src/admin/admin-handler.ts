/**
 * The admin listener (SPEC §10), on its own port so that it is never exposed
 * with the public one: `/healthz` (the process answers), `/readyz` (a
 * manifest is loaded).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
/** What the admin listener reports on. */
export interface AdminSource {
  /** True once a manifest is loaded (and, with workers, every worker is up). */
  ready(): boolean;
  /** Prometheus exposition text. */
  metrics(): Promise<string>;
}

const PROMETHEUS_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function createAdminHandler(source: AdminSource) {
  return function handleAdmin(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    // Read only: a POST or DELETE here is a mistake, not a probe.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return reply(405, 'method not allowed\n');
    }
    if (path === '/healthz') return reply(200, 'ok\n');
    if (path === '/readyz') return source.ready() ? reply(200, 'ready\n') : reply(503, 'not ready\n');
    if (path === '/metrics') {
      source.metrics().then(
        (text) => reply(200, text, PROMETHEUS_TYPE),
        (e: Error) => reply(500, `metrics failed: ${e.message}\n`),
      );
      return;
    }
    reply(404, 'not found\n');
  };
}
