/**
 * The admin listener (SPEC §10), on its own port so that it is never exposed
 * with the public one: `/healthz` (the process answers), `/readyz` (a
 * manifest is loaded).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HandlerState } from '../http/request-handler.ts';
import type { GatewayMetrics } from './metrics.ts';

export function createAdminHandler(state: HandlerState, metrics: GatewayMetrics) {
  return function handleAdmin(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path === '/healthz') return reply(200, 'ok\n');
    if (path === '/readyz') return state.table === null ? reply(503, 'no manifest loaded\n') : reply(200, 'ready\n');
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => reply(200, text, metrics.registry.contentType),
        (e: Error) => reply(500, `metrics failed: ${e.message}\n`),
      );
      return;
    }
    reply(404, 'not found\n');
  };
}
