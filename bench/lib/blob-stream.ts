/**
 * A large blob written from one reused 1 MiB buffer, with backpressure:
 * the upstream of the proxy scenarios (bench proxy-blob, the 1 GiB test),
 * which itself holds no more than a chunk in memory.
 */
import type { ServerResponse } from 'node:http';

const CHUNK = Buffer.alloc(1024 * 1024, 7);

/** Answers 200 with `size` bytes (a multiple of 1 MiB). */
export function sendBlob(res: ServerResponse, size: number): void {
  res.writeHead(200, { 'content-length': String(size), 'content-type': 'application/octet-stream' });
  let sent = 0;
  const pump = (): void => {
    while (sent < size) {
      sent += CHUNK.length;
      if (!res.write(CHUNK)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}
