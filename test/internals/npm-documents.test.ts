// The npm document worker and the documents it loads (src/rules/npm-worker.ts, src/rules/npm-cache.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { DocumentWorker, NpmDocuments, Packument } from '../../src/rules/npm-cache.ts';
import { compileNpm, type NpmTarget } from '../../src/rules/npm.ts';
import type { Upstreams } from '../../src/proxy/upstreams.ts';
import type { LoadedDocument } from '../../src/rules/npm-worker.ts';

const doc = {
  name: '@acme/tool',
  'dist-tags': { latest: '1.0.0', next: '2.0.0-rc.1', broken: 7 },
  versions: {
    '1.0.0': { version: '1.0.0', description: 'été ☃', dist: { tarball: 'https://registry.example/@acme/tool/-/tool-1.0.0.tgz', integrity: 'sha512-x' } },
    '2.0.0-rc.1': { version: '2.0.0-rc.1', readme: 'y'.repeat(20_000), dist: { tarball: 'https://registry.example/@acme/tool/-/tool-2.0.0-rc.1.tgz' } },
    'odd': null,
  },
  time: { '1.0.0': '2026-01-01T00:00:00.000Z' },
};
let backend: Server;
let base: string;
let worker: DocumentWorker;

before(async () => {
  backend = createServer((req, res) => {
    if (req.url === '/tool') return void res.writeHead(200, { 'content-type': 'application/json', etag: '"v1"' }).end(JSON.stringify(doc));
    if (req.url === '/abbreviated') return void res.writeHead(200, { 'content-type': 'application/vnd.npm.install-v1+json; charset=utf-8' }).end(JSON.stringify(doc));
    // Documents of 300,000 bytes each, for the memory budget.
    if (req.url?.startsWith('/big')) return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: req.url.slice(1), readme: 'r'.repeat(300_000 - 27 - req.url.length) }));
    if (req.url === '/unicode') return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ name: 'snow', versions: { '1.0.0': { dist: { tarball: 'https://registry.example/snow/-/snow ☃-1.0.0.tgz' } } } }));
    if (req.url === '/array') return void res.writeHead(200, { 'content-type': 'application/json' }).end('[1, 2]');
    if (req.url === '/unchanged') return void res.writeHead(304).end();
    if (req.url === '/broken') return void res.writeHead(500).end();
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`;
  worker = new DocumentWorker();
});
after(() => backend.close());

const load = (w: DocumentWorker, path: string) => w.load({ kind: 'load', url: base + path, name: '@acme/tool', headers: {}, timeout: 5000 });

test('a loaded document renders as JSON.stringify would write it, tarballs at the origin; versions, tags, and nothing else', async () => {
  const loaded = (await load(worker, '/tool')) as LoadedDocument;
  assert.equal(loaded.kind, 'document');
  assert.equal(loaded.etag, '"v1"');
  assert.deepEqual([...loaded.tarballs], [
    ['tool-1.0.0.tgz', 'https://registry.example/@acme/tool/-/tool-1.0.0.tgz'],
    ['tool-2.0.0-rc.1.tgz', 'https://registry.example/@acme/tool/-/tool-2.0.0-rc.1.tgz'],
  ]);
  const p = new Packument(loaded, worker);
  const origin = 'https://npm.example.com';
  const expected = structuredClone(doc);
  expected.versions['1.0.0'].dist.tarball = `${origin}/@acme/tool/-/tool-1.0.0.tgz`;
  expected.versions['2.0.0-rc.1'].dist.tarball = `${origin}/@acme/tool/-/tool-2.0.0-rc.1.tgz`;
  const whole = await p.render(origin);
  assert.equal(whole.body.toString('utf8'), JSON.stringify(expected));
  assert.equal(whole.contentType, 'application/json');
  assert.match(whole.etag, /^"[\w-]{32}"$/);
  // Over 8 KiB: its gzip variant, with an ETag of its own.
  assert.deepEqual(gunzipSync(whole.gzip!.body), whole.body);
  assert.equal(whole.gzip!.contentLength, String(whole.gzip!.body.length));
  assert.equal(whole.gzip!.etag, `${whole.etag.slice(0, -1)}-gzip"`);
  assert.equal(await p.render(origin), whole, 'rendered once per origin');
  const other = await p.render('http://127.0.0.1:8080');
  assert.notEqual(other.etag, whole.etag);
  // Versions by number or tag, as their own documents; a version with no document, a tag to no string, names every object has: none.
  const one = await p.renderVersion('latest', origin);
  assert.equal(one?.body.toString('utf8'), JSON.stringify(expected.versions['1.0.0']));
  assert.equal(one?.gzip, null);
  assert.equal((await p.renderVersion('2.0.0-rc.1', origin))?.body.toString('utf8'), JSON.stringify(expected.versions['2.0.0-rc.1']));
  assert.equal((await p.renderVersion('next', origin))?.etag, (await p.renderVersion('2.0.0-rc.1', origin))?.etag);
  for (const none of ['odd', 'broken', '9.9.9', 'constructor', '__proto__', 'toString']) assert.equal(p.renderVersion(none, origin), null, none);
});

test("a document's type: the abbreviated form's when the backend sent it, else JSON", async () => {
  const abbreviated = new Packument((await load(worker, '/abbreviated')) as LoadedDocument, worker);
  assert.equal((await abbreviated.render('http://o')).contentType, 'application/vnd.npm.install-v1+json');
  assert.equal((await abbreviated.renderVersion('1.0.0', 'http://o'))?.contentType, 'application/json');
});

test('a tarball URL with characters a Location field cannot hold is kept percent-encoded as UTF-8', async () => {
  const loaded = (await load(worker, '/unicode')) as LoadedDocument;
  assert.deepEqual([...loaded.tarballs], [['snow ☃-1.0.0.tgz', 'https://registry.example/snow/-/snow%20%E2%98%83-1.0.0.tgz']]);
});

test('what the backend answers besides a document', async () => {
  assert.deepEqual(await load(worker, '/unknown'), { kind: 'not-found' });
  assert.deepEqual(await load(worker, '/unchanged'), { kind: 'not-modified' });
  assert.deepEqual(await load(worker, '/broken'), { kind: 'failed', reason: 'backend answered 500' });
  assert.deepEqual(await load(worker, '/array'), { kind: 'failed', reason: 'not a package document' });
  const down = await worker.load({ kind: 'load', url: 'http://127.0.0.1:1/tool', name: 'tool', headers: {}, timeout: 5000 });
  assert.equal(down.kind, 'failed');
});

test('a worker that dies fails the messages it had; the next message starts another', async () => {
  // A stand-in that answers loads of /ok and dies at any other.
  const script = join(mkdtempSync(join(tmpdir(), 'gw-npm-worker-')), 'dies.mjs');
  writeFileSync(script, `import { parentPort } from 'node:worker_threads';
parentPort.on('message', ({ id, request }) => {
  if (request.url.endsWith('/ok')) parentPort.postMessage({ id, result: { kind: 'not-found' } });
  else setTimeout(() => process.exit(3), 50);
});`);
  const dying = new DocumentWorker(pathToFileURL(script));
  const both = [load(dying, '/die'), load(dying, '/ok')];
  assert.deepEqual(await both[1], { kind: 'not-found' });
  await assert.rejects(both[0], /exited \(3\)/);
  await Promise.all([assert.rejects(load(dying, '/die'), /exited/), assert.rejects(load(dying, '/die'), /exited/)]);
  assert.deepEqual(await load(dying, '/ok'), { kind: 'not-found' });
});

test('cached documents, and their renderings, stay within the memory budget: the least recently used go first', async () => {
  const MB = 1_000_000;
  const documents = new NpmDocuments({ upstreams: { resolveUrl: (u: URL) => u.href } as unknown as Upstreams, ttl: 60_000, timeout: 5000, maxBytes: MB });
  const target = (name: string): NpmTarget => compileNpm({ type: 'npm-v1', domain: 'npm.test', 'package-id': name, 'package-name': name, registry: base });
  const [a, b, c] = ['big-a', 'big-b', 'big-c'].map(target);
  for (const t of [a, b, c]) assert.ok((await documents.packument(t, false)) instanceof Packument);
  // Three texts of 300 kB: all kept.
  assert.ok(documents.fresh(a) && documents.fresh(b) && documents.fresh(c));
  assert.ok(documents.bytes <= MB && documents.bytes > 850_000, String(documents.bytes));
  // Rendering c for an origin adds 300 kB (and a small gzip variant): a, used least recently, goes.
  await documents.fresh(c)!.render('http://o');
  assert.equal(documents.fresh(a), undefined);
  assert.ok(documents.fresh(b) && documents.fresh(c));
  assert.ok(documents.bytes <= MB, String(documents.bytes));
  // A document keeps 16 renderings; one that goes gives its bytes back.
  const roomy = new NpmDocuments({ upstreams: { resolveUrl: (u: URL) => u.href } as unknown as Upstreams, ttl: 60_000, timeout: 5000, maxBytes: 100 * MB });
  const doc = (await roomy.packument(a, false)) as Packument;
  const text = doc.bytes;
  const one = sizeOfRendering(await doc.render('http://o0'));
  for (let i = 1; i < 17; i++) await doc.render(`http://o${i}`);
  await new Promise((r) => setImmediate(r));
  assert.equal(doc.bytes, text + 16 * one, `${doc.bytes}`);
  assert.equal(roomy.bytes, doc.bytes);
  // A document larger than the whole budget is served, not kept.
  const small = new NpmDocuments({ upstreams: { resolveUrl: (u: URL) => u.href } as unknown as Upstreams, ttl: 60_000, timeout: 5000, maxBytes: 100_000 });
  assert.ok((await small.packument(a, false)) instanceof Packument);
  assert.equal(small.fresh(a), undefined);
  assert.equal(small.bytes, 0);
});

const sizeOfRendering = (r: { body: Buffer; gzip: { body: Buffer } | null }) => r.body.length + (r.gzip?.body.length ?? 0);
