/**
 * The floor: the baseline's fixed 307 plus what every answer of the gateway
 * carries whatever its rules: an `x-request-id` header and one analytics
 * line (client address, user agent, referer from the request's headers),
 * serialized and written by the gateway's own code. No routing, no
 * template, no metrics. The gateway cannot cost less than this; the gap
 * from the baseline to here is the price of the analytics feed on
 * node:http. `node bench/floor-server.ts ANALYTICS_FILE`.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { analyticsLog } from '../src/analytics/analytics-log.ts';
import { requestId } from '../src/analytics/request-id.ts';

const LOCATION = 'https://github.com/org/pkg/releases/download/v1.0.0/pkg-linux.tar.gz';
const CAPTURE = { type: 'file', package: 'pkg', url: LOCATION, variables: { version: '1.0.0', os: 'linux' } } as const;
const analytics = analyticsLog(process.argv[2]);

const server = createServer((req, res) => {
  const start = performance.now();
  const id = requestId();
  res.writeHead(307, ['x-request-id', id, 'location', LOCATION, 'content-length', '0']);
  res.end();
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  analytics.write({
    requestId: id,
    method: req.method ?? 'GET',
    host: req.headers.host ?? '',
    path: q === -1 ? url : url.slice(0, q),
    query: q === -1 ? '' : url.slice(q + 1),
    status: 307,
    outcome: 'redirect',
    durationMs: performance.now() - start,
    client: { ip: req.socket.remoteAddress ?? null, userAgent: req.headers['user-agent'] ?? null, referer: req.headers.referer ?? null },
    capture: CAPTURE,
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port }) + '\n');
});
process.on('SIGTERM', () => server.close(() => void analytics.close().then(() => process.exit(0))));
