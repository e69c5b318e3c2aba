/**
 * The baseline: a bare node:http server answering every request with a
 * fixed 307, the limit the gateway is measured against. Same Node, same
 * process model; it announces its port like the gateway does. With a
 * certificate and its key as arguments, node:https answers the same 307
 * (the baseline of the gateway serving HTTPS itself).
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

const answer = (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(307, { location: 'https://github.com/org/pkg/releases/download/v1.0.0/pkg-linux.tar.gz', 'content-length': '0' });
  res.end();
};
const [cert, key] = process.argv.slice(2);
const server = cert === undefined ? createServer(answer) : createTlsServer({ cert: readFileSync(cert), key: readFileSync(key) }, answer);
server.listen(0, '127.0.0.1', () => {
  process.stderr.write(JSON.stringify({ msg: 'listening', port: (server.address() as AddressInfo).port }) + '\n');
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
