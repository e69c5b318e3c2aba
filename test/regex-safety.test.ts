// SPEC §5: no manifest regex or template can stall the server on a crafted path.
// The bound below is generous (1 s for what takes about a millisecond); a
// backtracking engine would need longer than the age of the universe for the
// manifest regexes. The gateway's own Distribution API grammar runs on the
// backtracking engine, written so that it needs no more than linear time:
// the last test holds it to that.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';

let gw: GatewayProcess;
before(async () => {
  gw = await startGateway({
    manifest: {
      rules: [
        { type: 'file-v2', domain: 're.test', 'package-id': 'p', 'incoming-path': '^/((a+)+)+$', 'outgoing-url': null },
        { type: 'file-v2', domain: 're.test', 'package-id': 'p', 'incoming-path': '^/(?<x>(a|aa)+)b$', 'outgoing-url': 'https://x.example/{x}' },
        { type: 'file-v1', domain: 'tpl.test', 'package-id': 'p', 'incoming-path': '/{a}{b}{c}{d}.x', 'outgoing-url': null },
        { type: 'file-v1', domain: 'tpl.test', 'package-id': 'p', 'incoming-path': '{+a}-{+b}-{+c}-{+d}.x', 'outgoing-url': null },
        // Claims every two-segment name, so that the Distribution API grammar checks them all.
        { type: 'docker-v2', domain: 'cr.test', 'rule-id': 'any', pattern: '*/*', registry: 'ghcr.io' },
      ],
    },
  });
});
after(() => gw.stop());

async function timed(path: string, host: string) {
  const start = performance.now();
  const res = await request(gw.port, { path, host });
  return { status: res.status, ms: performance.now() - start };
}

test('catastrophic regexes run in linear time', async () => {
  const evil = '/' + 'a'.repeat(6000) + '!';
  for (const host of ['re.test']) {
    const r = await timed(evil, host);
    assert.equal(r.status, 404);
    assert.ok(r.ms < 1000, `${r.ms} ms`);
  }
  const ok = await timed('/aaab', 're.test');
  assert.equal(ok.status, 307);
});

test('templates with adjacent variables run in linear time', async () => {
  const r1 = await timed('/' + 'a'.repeat(6000) + '.y', 'tpl.test');
  assert.equal(r1.status, 404);
  assert.ok(r1.ms < 1000, `${r1.ms} ms`);
  const r2 = await timed('/' + 'a-'.repeat(3000) + '.y', 'tpl.test');
  assert.equal(r2.status, 404);
  assert.ok(r2.ms < 1000, `${r2.ms} ms`);
});

test('the Distribution API grammar gives up crafted names, tags and digests in linear time', async () => {
  for (const path of [
    `/v2/a${'-'.repeat(8000)}!/x/manifests/1`,
    `/v2/a${'_a'.repeat(4000)}__!/x/manifests/1`,
    `/v2/a${'.a'.repeat(4000)}./x/manifests/1`,
    `/v2/a/b/blobs/a${'-a'.repeat(4000)}!`,
    `/v2/a/b/blobs/sha256:${'a'.repeat(8000)}!`,
    `/v2/a/b/manifests/${'a'.repeat(8000)}`,
  ]) {
    const r = await timed(path, 'cr.test');
    assert.equal(r.status, 400, path.slice(0, 40));
    assert.ok(r.ms < 1000, `${r.ms} ms`);
  }
});
