// Cutting a response off midway (src/http/send-slices.ts), on a real node:http server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { cutOff } from '../../src/http/send-slices.ts';

/** Sends two pipelined requests; the server answers the first after 200 ms and cuts the second off at once. What the client got, and whether the connection closed within 3 s. */
async function pipelined(cut: (res: ServerResponse) => void): Promise<{ got: string; closed: boolean }> {
  let n = 0;
  const server = createServer((_req, res) => {
    if (++n === 1) setTimeout(() => res.end('first'), 200);
    else {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
      cut(res);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    let got = '';
    client.on('data', (d) => (got += d.toString('latin1')));
    client.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n');
    const closed = await new Promise<boolean>((resolve) => {
      client.on('close', () => resolve(true));
      setTimeout(() => resolve(false), 3000).unref();
    });
    client.destroy();
    return { got, closed };
  } finally {
    server.closeAllConnections();
    server.close();
  }
}

test("a response queued behind another on a pipelined connection: the one before it arrives whole, then the connection closes", async () => {
  const { got, closed } = await pipelined(cutOff);
  assert.ok(closed);
  assert.match(got, /\r\n\r\nfirst$/);
});

test("node's own destroy() of such a response leaves the connection open (why cutOff exists; if this fails, node changed)", async () => {
  const { got, closed } = await pipelined((res) => res.destroy());
  // The client has 7 of the 100 bytes promised, and waits for the rest.
  assert.equal(closed, false);
  assert.match(got, /\r\n\r\nfirstHTTP\/1\.1 200 OK\r\ncontent-length: 100\r\n[^]*\r\n\r\npartial$/);
});
