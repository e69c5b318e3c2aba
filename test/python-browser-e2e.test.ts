// SPEC §6 end to end with a real browser, as micropip (Pyodide, JupyterLite)
// uses the index: a page on another origin fetches a project's PEP 691
// JSON page (through the PEP 503 redirect) and then the wheel it lists
// (through the gateway's redirect to the backend). Chromium lets the page
// read each answer only if it carries Access-Control-Allow-Origin.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pageDom } from './helpers/chromium.ts';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';

const WHEEL = 'frob-1.0-py3-none-any.whl';
// micropip's Accept; the page reports in its title what it could read.
const PAGE = `<!doctype html><html><head><title>waiting</title></head><body><script>
(async () => {
  try {
    const page = await fetch('http://py.example.com/simple/Frob/', { headers: { accept: 'application/vnd.pypi.simple.v1+json, */*;q=0.01' } });
    const json = await page.json();
    const wheel = await fetch(new URL(json.files[0].url, page.url));
    const bytes = await wheel.arrayBuffer();
    document.title = 'read ' + page.headers.get('content-type') + ' ' + json.name + ' ' + bytes.byteLength + ' bytes';
  } catch (e) {
    document.title = 'failed ' + e;
  }
})();
</script></body></html>`;

/** The lab page (lab.example.com) and the wheel's backend (files.example.com), which serves it with CORS, as files.pythonhosted.org does. */
let web: Server;
let gw: GatewayProcess;

before(async () => {
  web = createServer((req, res) => {
    if (req.headers.host === 'files.example.com') res.writeHead(200, { 'access-control-allow-origin': '*', 'content-type': 'application/octet-stream' }).end('wheel bytes');
    else res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  gw = await startGateway({
    manifest: {
      rules: [{
        type: 'python-v1', domain: 'py.example.com', 'package-id': 'frob', 'package-name': 'frob', version: '1.0',
        'file-name': WHEEL, 'backend-url': `http://files.example.com/${WHEEL}`,
      }],
    },
  });
});
after(async () => {
  await gw.stop();
  web.close();
});

test('a page on another origin reads the JSON page and downloads the wheel through the redirect; the download is counted', { timeout: 90_000 }, async () => {
  const webPort = (web.address() as AddressInfo).port;
  const dom = await pageDom('http://lab.example.com/', { 'py.example.com': gw.port, 'lab.example.com': webPort, 'files.example.com': webPort }, join(tempDir('gw-browser-'), 'profile'));
  assert.match(dom, /<title>read application\/vnd\.pypi\.simple\.v1\+json frob 11 bytes<\/title>/);
  const download = await gw.waitForLine((l) => l.path === `/simple/frob/${WHEEL}`);
  assert.equal(download.status, 307);
  assert.deepEqual(download.capture, { type: 'python', package: 'frob', version: '1.0', file: WHEEL, url: `http://files.example.com/${WHEEL}` });
  assert.match(String(download.client.userAgent), /HeadlessChrome\//);
});
