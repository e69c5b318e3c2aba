// The manifest watcher, in this process: a file written often in the
// manifest's folder (an analytics file, a log) must cost no file-system
// work, because every request may write it. chokidar 4 read the whole
// folder and stat'ed each entry on every event in it: ≈ 8 µs of CPU per
// request when the analytics file sat next to the manifest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Count the file-system calls a watcher can make, before it is loaded.
const calls = { lstat: 0, stat: 0, readdir: 0, realpath: 0 };
for (const name of Object.keys(calls) as (keyof typeof calls)[]) {
  const original = fsp[name] as (...args: unknown[]) => unknown;
  (fsp as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
    calls[name]++;
    return original(...args);
  };
}
syncBuiltinESMExports();
const { ManifestWatcher } = await import('../../src/reload/manifest-watcher.ts');

const total = () => calls.lstat + calls.stat + calls.readdir + calls.realpath;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a busy file next to the manifest costs no file-system call; a manifest change is still seen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-watch-'));
  const manifest = join(dir, 'manifest.json');
  writeFileSync(manifest, '{"rules":[]}');
  const changes: string[] = [];
  // The backup stat check is off: only the watcher is measured.
  const watcher = new ManifestWatcher(manifest, { debounceMs: 20, pollMs: 600_000 }, (reason) => changes.push(reason));
  await watcher.start();
  try {
    await sleep(100);
    const before = total();
    for (let i = 0; i < 100; i++) {
      appendFileSync(join(dir, 'analytics.jsonl'), `{"line":${i}}\n`);
      await sleep(5);
    }
    await sleep(200);
    // The file's creation may be looked at once; its 99 appends must not be.
    assert.ok(total() - before <= 4, `file-system calls for 100 appends to another file: ${JSON.stringify(calls)} (${total() - before} since start)`);
    assert.deepEqual(changes, []);

    writeFileSync(manifest, '{"rules":[ ]}');
    for (let i = 0; i < 100 && changes.length === 0; i++) await sleep(20);
    assert.deepEqual(changes, ['watch']);
  } finally {
    await watcher.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
