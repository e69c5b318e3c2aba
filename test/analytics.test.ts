// SPEC §9: every line matches schema/event.schema.json; a graceful stop loses none.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { startGateway } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';

const schema = JSON.parse(readFileSync(new URL('../schema/event.schema.json', import.meta.url), 'utf8'));
const validate = new Ajv2020({ strict: false }).compile(schema);

const D = 'feed.test';
const manifest = {
  rules: [
    { type: 'file-v1', domain: D, 'package-id': 'f', 'incoming-path': '/f/{v}', 'outgoing-url': 'https://x.example/{v}' },
    { type: 'file-v1', domain: D, 'package-id': 'c', 'incoming-path': '/count', 'outgoing-url': null },
    { type: 'telemetry-v1', domain: D, 'package-id': 't', 'incoming-path': '/t' },
    { type: 'pixel-v1', domain: D, 'package-id': 'p' },
  ],
};

test('every line of a mixed workload matches the event schema', async () => {
  const gw = await startGateway({ manifest });
  const responses = await Promise.all([
    request(gw.port, { path: '/f/1?a=b', host: D }),
    request(gw.port, { path: '/count', host: D, method: 'POST', body: '{"k":1}{"k":2}' }),
    request(gw.port, { path: '/t', host: D, method: 'POST', body: '{"e":1}' }),
    request(gw.port, { path: '/a.png?x-pxid=1', host: D }),
    request(gw.port, { path: '/nothing', host: D }),
    request(gw.port, { path: '/f/%C3%28', host: D }),
  ]);
  const code = await gw.stop();
  assert.equal(code, 0);
  assert.equal(gw.lines.length, 7);
  for (const line of gw.lines) assert.ok(validate(line), JSON.stringify(validate.errors) + JSON.stringify(line));
  for (const res of responses) {
    const id = res.headers['x-request-id'] as string;
    assert.match(id, /^[0-9A-HJKMNP-TV-Z]{26}$/);
    assert.ok(gw.lines.some((l) => l.requestId === id));
  }
  const line = gw.lines.find((l) => l.path === '/f/1')!;
  assert.equal(line.level, 30);
  assert.equal(line.msg, 'request');
  assert.equal(typeof line.time, 'number');
  assert.equal(line.method, 'GET');
  assert.equal(line.host, D);
  assert.equal(line.query, 'a=b');
  assert.ok(line.durationMs >= 0);
});

test('a graceful stop under load loses no line', async () => {
  const gw = await startGateway({ manifest });
  const sent: string[] = [];
  // Keep requests going, then stop while the last batch is in flight.
  for (let round = 0; round < 20; round++) {
    const batch = await Promise.all(
      Array.from({ length: 25 }, (_, i) => request(gw.port, { path: `/f/${round}-${i}`, host: D })),
    );
    for (const r of batch) sent.push(r.headers['x-request-id'] as string);
  }
  const code = await gw.stop('SIGTERM');
  assert.equal(code, 0);
  const logged = new Set(gw.lines.map((l) => l.requestId));
  assert.equal(sent.filter((id) => !logged.has(id)).length, 0);
  assert.equal(gw.lines.length, 500);
});

test('SIGINT also stops gracefully with exit 0', async () => {
  const gw = await startGateway({ manifest });
  await request(gw.port, { path: '/f/1', host: D });
  assert.equal(await gw.stop('SIGINT'), 0);
  assert.equal(gw.lines.length, 1);
});
