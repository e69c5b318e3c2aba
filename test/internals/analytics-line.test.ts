// The analytics line's serializer (src/analytics/analytics-log.ts): its own
// quoting of strings writes what JSON.stringify writes, for every UTF-16
// code unit, its durations read as JavaScript prints them, and a whole line
// is the JSON of its fields.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatMs, quote, serializeLine, type RequestLine } from '../../src/analytics/analytics-log.ts';

test('quote writes what JSON.stringify writes, for every code unit and for surrogate pairs', () => {
  for (let unit = 0; unit <= 0xffff; unit++) {
    const s = `a${String.fromCharCode(unit)}b`;
    assert.equal(quote(s), JSON.stringify(s), `U+${unit.toString(16)}`);
  }
  for (const s of ['', '"', '\\', '\u2028', '😀', 'x\ud83dy', '\ude00😀', '😀\ud800', `/p?q="1"&r=\\`]) {
    assert.equal(quote(s), JSON.stringify(s), JSON.stringify(s));
  }
  assert.equal(quote(null), 'null');
});

test('formatMs prints a duration rounded to the microsecond as String does', () => {
  for (let micros = 0; micros <= 2_000_000; micros++) {
    const ms = micros / 1000;
    if (formatMs(ms) !== String(ms)) assert.fail(`${micros} µs: ${formatMs(ms)} against ${String(ms)}`);
  }
  for (const ms of [2147483.647, 2147483.648, 86_400_000, 1e21]) assert.equal(formatMs(ms), String(ms));
});

test('a line is the JSON of its fields, in the schema order, user agents with quotes included', () => {
  const line: RequestLine = {
    requestId: '01JD0000000000000000000000',
    method: 'GET',
    host: 'dl.example.com',
    path: '/tool-1.4.0.tgz',
    query: 'a="b"',
    status: 307,
    outcome: 'redirect',
    durationMs: 0.21,
    client: { ip: '127.0.0.1', userAgent: 'Mozilla/5.0 ("x" \\ é\u0001)', referer: null },
    capture: { type: 'file', package: 'tool', url: 'https://example.com/tool-1.4.0.tgz', variables: { version: '1.4.0' } },
  };
  const text = serializeLine(line, 1764191234567);
  assert.ok(text.endsWith('}\n'));
  assert.equal(text.slice(0, -1), JSON.stringify({ level: 30, time: 1764191234567, msg: 'request', ...line }));
  // The time's text is kept for its millisecond: each line still has its own.
  for (const time of [1764191234567, 1764191234568, 1764191234568, 1764191234567, 0]) {
    assert.equal(JSON.parse(serializeLine(line, time)).time, time);
  }
});
