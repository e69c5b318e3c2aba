// SPEC §10: /metrics on the admin port. Request counts and the latency
// histogram are counted by hand on the hot path and exposed through
// prom-client; this checks the exposition, alone and across --workers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startGateway } from './helpers/gateway-process.ts';
import { rawRequest, request, statusOf } from './helpers/http-client.ts';

const D = 'metrics.test';
const manifest = {
  rules: [{ type: 'file-v1', domain: D, 'package-id': 'f', 'incoming-path': '/f/{v}', 'outgoing-url': 'https://x.example/{v}' }],
};

/** `name{labels} value` lines of one metric family, as [labels, value]. */
function samples(text: string, name: string): [string, number][] {
  const out: [string, number][] = [];
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) out.push([m[1] ?? '', Number(m[2])]);
  return out;
}

async function checkExposition(args: string[]): Promise<void> {
  const gw = await startGateway({ manifest, args });
  try {
    // With --workers, wait until the workers listen.
    for (let i = 0; i < 200 && (await request(gw.adminPort, { path: '/readyz' })).status !== 200; i++) await new Promise((r) => setTimeout(r, 25));
    for (let i = 0; i < 30; i++) assert.equal((await request(gw.port, { path: `/f/${i}`, host: D })).status, 307);
    for (let i = 0; i < 4; i++) assert.equal((await request(gw.port, { path: '/nothing', host: D })).status, 404);
    // Refused before the handler: by the parser, and CONNECT.
    assert.equal(statusOf(await rawRequest(gw.port, 'GET /a b c HTTP/1.1\r\n\r\n')), 400);
    assert.equal(statusOf(await rawRequest(gw.port, `CONNECT ${D}:443 HTTP/1.1\r\nHost: ${D}:443\r\n\r\n`)), 405);
    const text = (await request(gw.adminPort, { path: '/metrics' })).text;

    assert.match(text, /^# TYPE gateway_request_duration_seconds histogram$/m);
    assert.deepEqual(samples(text, 'gateway_requests_total'), [
      ['{outcome="redirect",kind="file"}', 30],
      ['{outcome="not-found",kind="none"}', 4],
      ['{outcome="rejected",kind="none"}', 2],
    ]);
    const buckets = samples(text, 'gateway_request_duration_seconds_bucket');
    assert.equal(buckets.length, 13, 'twelve bounds and +Inf');
    assert.deepEqual(buckets.at(-1), ['{le="+Inf"}', 36]);
    assert.deepEqual(buckets[0][0], '{le="0.0001"}');
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i][1] >= buckets[i - 1][1], 'cumulative');
    assert.deepEqual(samples(text, 'gateway_request_duration_seconds_count'), [['', 36]]);
    const [[, sum]] = samples(text, 'gateway_request_duration_seconds_sum');
    assert.ok(sum > 0 && sum < 36, `sum of 36 durations in seconds: ${sum}`);
    assert.deepEqual(samples(text, 'gateway_analytics_blocking_writes_total'), [['', 0]]);
    // The test reads the feed from a pipe: with workers, the primary relays their lines.
    assert.deepEqual(samples(text, 'gateway_analytics_relay_blocking_writes_total'), args.includes('--workers') ? [['', 0]] : []);
    assert.deepEqual(samples(text, 'gateway_analytics_destination_full'), [['', 0]]);
    assert.deepEqual(samples(text, 'gateway_proxy_read_buffer_bytes'), [['', 0]]);
    assert.deepEqual(samples(text, 'gateway_send_timeouts_total'), [['', 0]]);
    assert.deepEqual(samples(text, 'gateway_npm_cache_bytes'), [['', 0]]);
    // One series, from the primary with --workers.
    const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    assert.deepEqual(samples(text, 'gateway_build_info'), [[`{version="${version}",node="${process.version}"}`, 1]]);
  } finally {
    assert.equal(await gw.stop(), 0);
  }
}

test('request counts and the latency histogram in the Prometheus text format', () => checkExposition([]));

test('--workers 2: counts and histogram are summed over the workers', { timeout: 30_000 }, () => checkExposition(['--workers', '2']));

test('an idle gateway wakes up about a hundred times a second, not a thousand', { timeout: 30_000 }, async () => {
  // The event-loop lag metrics sample with a timer (node's default: every
  // 10 ms); sampling every 1 ms woke an idle gateway 860 times a second
  // and doubled the CPU it used doing nothing.
  const gw = await startGateway({ manifest });
  try {
    const main = `/proc/${gw.child.pid}/task/${gw.child.pid}/status`;
    const wakeups = () => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(main, 'utf8'))![1]);
    await new Promise((r) => setTimeout(r, 1000));
    const before = wakeups();
    await new Promise((r) => setTimeout(r, 2000));
    const perSecond = (wakeups() - before) / 2;
    assert.ok(perSecond < 300, `main thread woke ${perSecond} times a second`);
    assert.match((await request(gw.adminPort, { path: '/metrics' })).text, /^gateway_nodejs_eventloop_lag_p99_seconds \d/m);
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});
