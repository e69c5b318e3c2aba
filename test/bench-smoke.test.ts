// The benchmark in quick mode, so that it cannot rot: every scenario runs,
// prints its ratio to the baseline, and the results table is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/gateway-process.ts';

test('npm run bench -- --quick runs every scenario', { timeout: 180_000 }, () => {
  const out = join(tempDir('gw-bench-smoke-'), 'results.md');
  const r = spawnSync(process.execPath, [new URL('../bench/run.ts', import.meta.url).pathname, '--quick', '--out', out], { encoding: 'utf8', timeout: 170_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  for (const scenario of ['floor', 'file-10 ', 'file-10-tls', 'file-2k', 'file-20k', 'docker-redirect', 'python-page', 'npm-tarball', 'proxy-blob ', 'proxy-blob-tls', 'reload-20k', 'workers']) {
    assert.match(r.stdout, new RegExp(`^${scenario}`, 'm'), scenario);
  }
  assert.match(r.stdout, /throughput ×\d/);
  // CPU per request with its system (kernel) part, the subject's and the baseline's.
  assert.match(r.stdout, /^file-10 .* µs\/req \(sys \d+\.\d\) .*\| baseline .* µs\/req \(sys \d+\.\d\)/m);
  // Instructions counted under callgrind (valgrind, installed by .ci/run).
  assert.match(r.stdout, /^instructions +baseline +main thread +\d+ per request/m);
  assert.match(r.stdout, /^instructions +file-10 +main thread +\d+ per request +×\d/m);
  const table = readFileSync(out, 'utf8');
  assert.match(table, /^# Benchmark results/);
  assert.match(table, /\| file-20k \| \d+/);
  assert.match(table, /^\| file-10 \| \d+ \| ×\d/m);
});
