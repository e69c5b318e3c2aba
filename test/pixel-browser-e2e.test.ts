// SPEC §8 end to end with a real browser: headless Chromium opens a
// documentation page (served here, under its own host name) that shows a
// pixel-v1 image from the gateway's domain. Needs chromium, which .ci/run
// installs.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pageDom } from './helpers/chromium.ts';
import { startGateway, tempDir, type GatewayProcess } from './helpers/gateway-process.ts';

const work = tempDir('gw-browser-');
// The image reports in the page's title whether it loaded, and its size.
const PAGE = `<!doctype html><html><head><title>waiting</title></head><body>
<img src="http://dl.example.com/a.png?x-pxid=readme-top"
     onload="document.title = 'loaded ' + this.naturalWidth + 'x' + this.naturalHeight" onerror="document.title = 'failed'">
</body></html>`;
let docs: Server;
let gw: GatewayProcess;

before(async () => {
  docs = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE));
  await new Promise<void>((r) => docs.listen(0, '127.0.0.1', r));
  gw = await startGateway({ manifest: { rules: [{ type: 'pixel-v1', domain: 'dl.example.com', 'package-id': 'docs' }] } });
});
after(async () => {
  await gw.stop();
  docs.close();
});

/** Chromium loads the page (with the profile in `profile`) and prints its DOM once the page and its image have loaded. */
function openPage(profile: string): Promise<string> {
  return pageDom('http://docs.example.com/guide.html', { 'dl.example.com': gw.port, 'docs.example.com': (docs.address() as AddressInfo).port }, profile);
}

test('a documentation page shows the pixel: Chromium decodes a 1x1 image, and the view is counted with its id and referrer', { timeout: 150_000 }, async () => {
  const profile = join(work, 'profile');
  assert.match(await openPage(profile), /<title>loaded 1x1<\/title>/);
  await new Promise((r) => setTimeout(r, 200));
  const views = () => gw.lines.filter((l) => l.path === '/a.png');
  assert.equal(views().length, 1);
  const [view] = views();
  assert.equal(view.status, 200);
  assert.deepEqual(view.capture, { type: 'pixel', package: 'docs', pixel: 'readme-top' });
  // A cross-origin image gets the page's origin as its referrer (the browser's default policy).
  assert.equal(view.client.referer, 'http://docs.example.com/');
  assert.match(String(view.client.userAgent), /HeadlessChrome\//);
  // The same browser, its cache kept, views the page again: the pixel is not cached (no-store), so the view is counted again.
  assert.match(await openPage(profile), /<title>loaded 1x1<\/title>/);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(views().length, 2);
});
