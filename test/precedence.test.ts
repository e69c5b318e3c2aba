// SPEC §3: kinds are tried in order; a request a kind does not claim falls through.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type GatewayProcess } from './helpers/gateway-process.ts';
import { request } from './helpers/http-client.ts';

const D = 'prec.test';
let gw: GatewayProcess;
before(async () => {
  gw = await startGateway({
    manifest: {
      rules: [
        { type: 'catch-all-v1', domain: D, 'package-id': 'catch', 'redirect-target-domain': 'fallback.example' },
        { type: 'file-v2', domain: D, 'package-id': 'v2', 'incoming-path': '^/re/(?<x>.+)$', 'outgoing-url': 'https://re.example/{x}' },
        { type: 'file-v1', domain: D, 'package-id': 'v1', 'incoming-path': '/{+path}', 'outgoing-url': 'https://files.example/{+path}' },
        { type: 'telemetry-v1', domain: D, 'package-id': 'tel', 'incoming-path': '/a.png' },
        { type: 'pixel-v1', domain: D, 'package-id': 'px' },
        { type: 'file-v1', domain: 'only-catch.test', 'package-id': 'v1', 'incoming-path': '/known', 'outgoing-url': 'https://k.example/' },
        { type: 'catch-all-v1', domain: 'only-catch.test', 'package-id': 'catch2' },
      ],
    },
  });
});
after(() => gw.stop());

const typeOf = async (method: string, path: string, host = D) => {
  const res = await request(gw.port, { method, path, host });
  const [line] = await gw.linesFor(res.headers['x-request-id'] as string);
  return { status: res.status, location: res.headers.location, capture: line.capture };
};

test('pixel before telemetry before file-v1 before file-v2 before catch-all', async () => {
  const px = await typeOf('GET', '/a.png');
  assert.equal(px.capture?.type, 'pixel');
  const tel = await typeOf('POST', '/a.png');
  assert.equal(tel.capture?.type, 'telemetry');
  const file = await typeOf('GET', '/re/x');
  assert.equal(file.location, 'https://files.example/re/x', 'file-v1 answers before file-v2');
});

test('a request a kind does not claim falls through to the next kind', async () => {
  // PUT /a.png: not a pixel (GET only), not telemetry (POST only): file-v1.
  const put = await typeOf('PUT', '/a.png');
  assert.equal(put.location, 'https://files.example/a.png');
  // /v2/... with no docker rule falls through to the file rule.
  const v2 = await typeOf('GET', '/v2/other/manifests/1');
  assert.equal(v2.location, 'https://files.example/v2/other/manifests/1');
});

test('catch-all answers what nothing else claims; without a target, 200', async () => {
  const root = await typeOf('GET', '/');
  assert.equal(root.location, 'https://fallback.example/', '/{+path} needs one character; catch-all takes /');
  assert.equal((await typeOf('GET', '/known', 'only-catch.test')).location, 'https://k.example/');
  const other = await typeOf('GET', '/unknown', 'only-catch.test');
  assert.equal(other.status, 200);
  assert.deepEqual(other.capture, { type: 'file', package: 'catch2', url: null, variables: {} });
});
