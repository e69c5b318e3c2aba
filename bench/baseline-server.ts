/**
 * The baseline: a bare node:http server answering every request with a
 * fixed 307, the limit the gateway is measured against. Same Node, same
 * process model; it announces its port like the gateway does.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const server = createServer((_req, res) => {
  res.writeHead(307, { location: 'https://github.com/org/pkg/releases/download/v1.0.0/pkg-linux.tar.gz', 'content-length': '0' });
  res.end();
});
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
