// SPEC §5 catch-all-v1: same path and query on the target domain, re-encoded.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';

let gw: GatewayProcess;
before(async () => {
  gw = await startGateway({
    manifest: { rules: [{ type: 'catch-all-v1', domain: 'old.test', 'package-id': 'site', 'redirect-target-domain': 'new.example' }] },
  });
});
after(() => gw.stop());

test('path and query are kept, re-encoded', async () => {
  const cases: [string, string][] = [
    ['/hello%20world', 'https://new.example/hello%20world'],
    ['/a/b?x=1&y=%2F', 'https://new.example/a/b?x=1&y=%2F'],
    ['/%7Euser/%41', 'https://new.example/~user/A'],
    ['/caf%c3%a9', 'https://new.example/caf%C3%A9'],
    ['/', 'https://new.example/'],
  ];
  for (const [path, location] of cases) {
    const res = await request(gw.port, { path, host: 'old.test' });
    assert.equal(res.status, 307, path);
    assert.equal(res.headers.location, location, path);
  }
});

test('capture is of type file with the target url', async () => {
  const res = await request(gw.port, { path: '/docs?page=2', host: 'old.test' });
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  assert.deepEqual(line.capture, { type: 'file', package: 'site', url: 'https://new.example/docs?page=2', variables: {} });
});

test('malformed encoding gets 400', async () => {
  const res = await request(gw.port, { path: '/%E0%A4%A', host: 'old.test' });
  assert.equal(res.status, 400);
});
