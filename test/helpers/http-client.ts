/**
 * Plain HTTP requests to 127.0.0.1 with full control over Host and the raw
 * request target, which fetch() does not give.
 */
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

export interface RequestOptions {
  method?: string;
  path: string;
  host?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

export function request(port: number, opts: RequestOptions): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: opts.method ?? 'GET',
        path: opts.path,
        headers: { ...(opts.host === undefined ? {} : { host: opts.host }), ...opts.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Sends `raw` bytes as they are and resolves with the whole response text. */
export function rawRequest(port: number, raw: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.on('error', reject);
    socket.write(raw);
    socket.setTimeout(5000, () => socket.destroy(new Error('raw request timed out')));
  });
}

/** The status code of a raw HTTP response. */
export function statusOf(raw: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(raw)?.[1] ?? 0);
}

/** The value of a metric on an admin port: `name`, or `name{label="value"}` as the text writes it; NaN when absent. */
export async function metricValue(adminPort: number, name: string): Promise<number> {
  const text = (await request(adminPort, { path: '/metrics' })).text;
  return Number(new RegExp(`^${name.replace(/[{}()[\]\\.*+?^$|]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
}

/** The body of a raw HTTP response, parsed as JSON. */
export function jsonBodyOf(raw: string): any {
  return JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
}

/**
 * `count` clients that send `raw` and then stop reading: the kernel's
 * buffers fill, then the server's writes wait. `resume()` has them read
 * again, and resolves with the bytes each got until its connection closed.
 */
export function stalledClients(port: number, raw: string, count: number): { resume(): Promise<number[]> } {
  const clients = Array.from({ length: count }, () => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', () => undefined);
    socket.write(raw);
    socket.pause();
    let bytes = 0;
    socket.on('data', (d: Buffer) => (bytes += d.length));
    return { socket, closed: new Promise<number>((r) => socket.on('close', () => r(bytes))) };
  });
  return {
    resume() {
      for (const { socket } of clients) socket.resume();
      return Promise.all(clients.map((c) => c.closed));
    },
  };
}
