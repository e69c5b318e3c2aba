// Unit tests for the body event scanner, the query merge and address helpers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEvents } from '../../src/http/body-events.ts';
import { mergeQuery } from '../../src/http/query-merge.ts';
import { anonymizeIp, clientIp } from '../../src/analytics/client-ip.ts';
import { trustedProxies } from '../../src/http/trusted-proxies.ts';
import { normalizeHost } from '../../src/http/request-host.ts';

test('parseEvents: objects only, in order, stop at invalid JSON, respect the count', () => {
  assert.deepEqual(parseEvents('{"a":1}{"b":2}', 10), [{ a: 1 }, { b: 2 }]);
  assert.deepEqual(parseEvents('{"s":"a\\"}{"}\n{"t":[1,{"u":2}]}', 10), [{ s: 'a"}{' }, { t: [1, { u: 2 }] }]);
  assert.deepEqual(parseEvents('1 true null "x" [1] {"o":1}', 10), [{ o: 1 }]);
  assert.deepEqual(parseEvents('{"a":1} {bad} {"b":2}', 10), [{ a: 1 }]);
  assert.deepEqual(parseEvents('{"a":1}{"b"', 10), [{ a: 1 }]);
  assert.deepEqual(parseEvents('{"a":1}{"b":2}{"c":3}', 2), [{ a: 1 }, { b: 2 }]);
  assert.deepEqual(parseEvents('', 10), []);
});

test('mergeQuery', () => {
  assert.equal(mergeQuery('https://h/api?src=gw', 'src=x&k=v'), 'https://h/api?src=gw&k=v');
  assert.equal(mergeQuery('https://h/a', 'q=1'), 'https://h/a?q=1');
  assert.equal(mergeQuery('https://h/a?', 'q=1'), 'https://h/a?q=1');
  assert.equal(mergeQuery('https://h/a#f', 'q=1'), 'https://h/a?q=1#f');
  assert.equal(mergeQuery('https://h/a', 'a=1&a=2&b'), 'https://h/a?a=1&b');
  assert.equal(mergeQuery('https://h/a', 'x=a+b%21&y=%7e'), 'https://h/a?x=a%20b%21&y=~');
  assert.equal(mergeQuery('https://h/a', 'x=%zz'), null);
  assert.equal(mergeQuery('https://h/a', '&&'), 'https://h/a');
});

test('clientIp and anonymizeIp', () => {
  const loop = trustedProxies(['loopback', '10.0.0.0/8']);
  assert.equal(clientIp('127.0.0.1', true, '1.2.3.4, 10.1.1.1', loop), '1.2.3.4');
  assert.equal(clientIp('::ffff:127.0.0.1', true, undefined, loop), '127.0.0.1');
  assert.equal(clientIp('203.0.113.1', false, '1.2.3.4', loop), '203.0.113.1');
  assert.equal(clientIp('127.0.0.1', true, '10.0.0.1, 127.0.0.1', loop), '10.0.0.1');
  assert.equal(anonymizeIp('192.0.2.55'), '192.0.2.0');
  assert.equal(anonymizeIp('2001:db8::1'), '2001:db8:0::');
  assert.equal(anonymizeIp(null), null);
  assert.throws(() => trustedProxies(['not-an-ip']));
  assert.throws(() => trustedProxies(['10.0.0.0/33']));
  assert.equal(trustedProxies(['all']).trusts('8.8.8.8'), true);
  assert.equal(trustedProxies(['none']).trusts('127.0.0.1'), false);
});

test('normalizeHost', () => {
  assert.equal(normalizeHost('Example.COM.:8080'), 'example.com');
  assert.equal(normalizeHost('[::1]:8080'), '[::1]');
  assert.equal(normalizeHost(''), '');
});
