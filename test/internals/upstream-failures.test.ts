// The operations log's lines for upstream failures (src/proxy/upstream-failures.ts):
// each backend and reason at most once per interval, with the count of the
// failures not logged since. The lines of a real gateway: docker-proxy and npm-e2e tests.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { UpstreamFailureLog } from '../../src/proxy/upstream-failures.ts';

test('a backend that keeps failing for one reason is logged once per interval, then with how many failures went unlogged', async () => {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ base: null, timestamp: false }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const failures = new UpstreamFailureLog(log, 200);
  for (let i = 0; i < 3; i++) failures.report('https://a.example', 'UPSTREAM_UNREACHABLE', 'connect ECONNREFUSED');
  failures.report('https://b.example', 'UPSTREAM_TIMEOUT', 'no answer in time');
  failures.report('https://a.example', 'UPSTREAM_UNREACHABLE', 'self-signed certificate');
  const first = { level: 40, msg: 'upstream failed', backend: 'https://a.example', code: 'UPSTREAM_UNREACHABLE', reason: 'connect ECONNREFUSED' };
  assert.deepEqual(lines, [
    first,
    { level: 40, msg: 'upstream failed', backend: 'https://b.example', code: 'UPSTREAM_TIMEOUT', reason: 'no answer in time' },
    { level: 40, msg: 'upstream failed', backend: 'https://a.example', code: 'UPSTREAM_UNREACHABLE', reason: 'self-signed certificate' },
  ]);
  await new Promise((r) => setTimeout(r, 250));
  failures.report('https://a.example', 'UPSTREAM_UNREACHABLE', 'connect ECONNREFUSED');
  failures.report('https://a.example', 'UPSTREAM_UNREACHABLE', 'connect ECONNREFUSED');
  assert.deepEqual(lines.slice(3), [{ ...first, unlogged: 2 }]);
});
