// The backend client's HTTP/1.1 syntax (src/proxy/http1-wire.ts): heads and
// chunked bodies split at every byte, framing by RFC 9112 §6.3, and what is
// refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkedDecoder, framing, HeadReader, keepsConnection, requestHead, type ResponseHead } from '../../src/proxy/http1-wire.ts';
import { BackendError } from '../../src/proxy/backend-error.ts';

/** Feeds `wire` in two reads split at `at`, as a connection would, each read at the start of its own buffer. */
function headSplit(wire: string, at: number): { head: ResponseHead; rest: string } {
  const reader = new HeadReader();
  const parts = [wire.slice(0, at), wire.slice(at)];
  for (let i = 0; i < parts.length; i++) {
    const buffer = Buffer.from(parts[i], 'latin1');
    const read = reader.read(buffer, 0, buffer.length);
    if (read !== null) return { head: read.head, rest: buffer.toString('latin1', read.bodyAt) + parts.slice(i + 1).join('') };
  }
  throw new Error('head not complete');
}

test('a head split anywhere gives the same fields and body start; interim answers are skipped', () => {
  const wire = 'HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type:  text/plain \r\nx-multi: a\r\nX-Multi: b\r\nx-latin: caf\xe9\r\n\r\nbody';
  for (let at = 0; at <= wire.length; at++) {
    const { head, rest } = headSplit(wire, at);
    assert.equal(head.status, 200, `split at ${at}`);
    assert.equal(head.http11, true);
    assert.deepEqual(head.fields, ['content-type', 'text/plain', 'x-multi', 'a', 'x-multi', 'b', 'x-latin', 'caf\xe9']);
    assert.equal(rest, 'body', `split at ${at}`);
  }
});

test('a status line without a reason phrase, with or without its space', () => {
  for (const wire of ['HTTP/1.1 204\r\nx: 1\r\n\r\n', 'HTTP/1.1 204 \r\nx: 1\r\n\r\n', 'HTTP/1.0 204\r\n\r\n']) {
    const read = new HeadReader().read(Buffer.from(wire, 'latin1'), 0, wire.length);
    assert.equal(read?.head.status, 204, JSON.stringify(wire));
  }
});

test('heads that are refused', () => {
  const refused = (wire: string) => assert.throws(() => new HeadReader().read(Buffer.from(wire, 'latin1'), 0, wire.length), BackendError, JSON.stringify(wire));
  refused('HTTP/2 200\r\n\r\n');
  refused('HTTP/1.1 2000 OK\r\n\r\n');
  refused('SSH-2.0-OpenSSH\r\n\r\n');
  refused('HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n');
  refused('HTTP/1.1 200 OK\r\nname : value\r\n\r\n');
  refused('HTTP/1.1 200 OK\r\nx: a\r\n folded\r\n\r\n');
  refused('HTTP/1.1 200 OK\r\nx: a\x00b\r\n\r\n');
  refused(`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(64 * 1024)}\r\n\r\n`);
  // Bare LF line ends, at once: such a head would never end here.
  refused('HTTP/1.1 200 OK\ncontent-length: 2\n\nok');
  refused('HTTP/1.1 200 OK\r\nx: 1\n');
  for (let at = 0; at <= 27; at++) {
    const wire = 'HTTP/1.1 200 OK\r\nx: 1\r\ny: 2\n\r\n';
    const reader = new HeadReader();
    const parts = [wire.slice(0, at), wire.slice(at)].map((p) => Buffer.from(p, 'latin1'));
    assert.throws(() => parts.forEach((b) => reader.read(b, 0, b.length)), /bare LF/, `split at ${at}`);
  }
  const reader = new HeadReader();
  const big = Buffer.from('HTTP/1.1 200 OK\r\n' + 'x: y\r\n'.repeat(12000), 'latin1');
  assert.throws(() => reader.read(big, 0, big.length), /too large/);
});

const head = (status: number, fields: string[], http11 = true): ResponseHead => ({ status, http11, fields });

test('framing (RFC 9112 §6.3) and whether the connection is kept', () => {
  assert.deepEqual(framing('HEAD', head(200, ['content-length', '5'])), { kind: 'none' });
  assert.deepEqual(framing('GET', head(304, ['content-length', '5'])), { kind: 'none' });
  assert.deepEqual(framing('GET', head(204, [])), { kind: 'none' });
  assert.deepEqual(framing('GET', head(200, ['content-length', '0'])), { kind: 'none' });
  assert.deepEqual(framing('GET', head(200, ['content-length', '7, 7'])), { kind: 'length', remaining: 7 });
  assert.deepEqual(framing('GET', head(200, ['transfer-encoding', 'Chunked', 'content-length', '3'])), { kind: 'chunked' });
  // Codings other than chunked could not be passed on as they came: refused.
  for (const codings of ['gzip, chunked', 'gzip', 'chunked, chunked']) assert.throws(() => framing('GET', head(200, ['transfer-encoding', codings])), /transfer coding not supported/, codings);
  assert.throws(() => framing('GET', head(200, ['transfer-encoding', 'gzip', 'transfer-encoding', 'chunked'])), /not supported/);
  assert.deepEqual(framing('GET', head(200, [])), { kind: 'close' });
  for (const bad of ['7, 8', '-1', '0x10', '1e3', '']) assert.throws(() => framing('GET', head(200, ['content-length', bad])), BackendError, bad);
  const kept = (h: ResponseHead) => keepsConnection(h, framing('GET', h));
  assert.equal(kept(head(200, ['content-length', '1'])), true);
  assert.equal(kept(head(200, ['content-length', '1'], false)), false);
  assert.equal(kept(head(200, ['content-length', '1', 'connection', 'keep-alive, Close'])), false);
  assert.equal(kept(head(200, [])), false);
  assert.equal(kept(head(200, ['transfer-encoding', 'chunked', 'content-length', '3'])), false);
  assert.equal(kept(head(200, ['transfer-encoding', 'chunked'])), true);
});

test('a chunked body split at every byte decodes to the same data and stops at its end', () => {
  const wire = '5\r\nhello\r\n1a;ext="a;b"\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-trailer: 1\r\n\r\nNEXT';
  const bodyEnd = wire.indexOf('NEXT');
  for (let at = 0; at <= wire.length; at++) {
    const decoder = new ChunkedDecoder();
    let data = '';
    let stopped = -1;
    let offset = 0;
    for (const part of [wire.slice(0, at), wire.slice(at)]) {
      if (decoder.done) break;
      const buffer = Buffer.from(part, 'latin1');
      const pieces: number[] = [];
      const end = decoder.decode(buffer, 0, buffer.length, pieces);
      for (let i = 0; i < pieces.length; i += 2) data += buffer.toString('latin1', pieces[i], pieces[i + 1]);
      if (decoder.done) stopped = offset + end;
      offset += buffer.length;
    }
    assert.equal(data, 'helloabcdefghijklmnopqrstuvwxyz', `split at ${at}`);
    assert.equal(stopped, bodyEnd, `split at ${at}`);
  }
});

test('chunked bodies that are refused', () => {
  for (const wire of ['zz\r\n', '5\r\nhelloX\r\n', `${'1'.repeat(13)}\r\n`, `5;${'x'.repeat(5000)}`, '5\n', '5\r\nhello\n', '0\r\nx-trailer: 1\n']) {
    const buffer = Buffer.from(wire, 'latin1');
    assert.throws(() => new ChunkedDecoder().decode(buffer, 0, buffer.length, []), BackendError, JSON.stringify(wire.slice(0, 20)));
  }
});

test('request heads: Host first, fields as given, nothing that could end a line', () => {
  assert.equal(requestHead(new URL('http://[::1]:5000/v2/a/manifests/1?x=1'), 'GET', ['accept', 'a/b', 'x-forwarded-for', '127.0.0.1']), 'GET /v2/a/manifests/1?x=1 HTTP/1.1\r\nhost: [::1]:5000\r\naccept: a/b\r\nx-forwarded-for: 127.0.0.1\r\n\r\n');
  assert.throws(() => requestHead(new URL('http://r/v2/'), 'GET', ['authorization', 'Bearer x\r\nx-evil: 1']), BackendError);
  assert.throws(() => requestHead(new URL('http://r/v2/'), 'GET', ['bad name', 'x']), BackendError);
  assert.throws(() => requestHead(new URL('http://r/v2/'), 'GET', ['x', 'snow \u2603']), BackendError);
});
