/**
 * The TLS upstream of proxy-blob-tls, in a process of its own so that its
 * encryption does not share a thread with the downloader's decryption:
 * `node tls-blob-upstream.ts KEY CERT SIZE` answers every request with
 * SIZE bytes (a multiple of 1 MiB) and prints its port.
 */
import { createServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { sendBlob } from './blob-stream.ts';

const [key, cert, size] = process.argv.slice(2);
const server = createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => sendBlob(res, Number(size)));
server.listen(0, '127.0.0.1', () => process.stdout.write(`${(server.address() as AddressInfo).port}\n`));
process.on('SIGTERM', () => process.exit(0));
