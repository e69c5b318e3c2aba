// The proxy's read buffers against their budget (src/proxy/backend-connection.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadBudget, ReadBuffers } from '../../src/proxy/backend-connection.ts';

const KiB = 1024;

test('while the budget lasts a buffer holds 256 KiB, then 16 KiB; dropped buffers make room again', () => {
  const budget = new ReadBudget(512 * KiB);
  const sizes = [budget.take(), budget.take(), budget.take()].map((b) => b.length);
  assert.deepEqual(sizes, [256 * KiB, 256 * KiB, 16 * KiB]);
  assert.equal(budget.held, 528 * KiB);
  budget.drop(Buffer.alloc(256 * KiB));
  budget.drop(Buffer.alloc(16 * KiB));
  assert.equal(budget.held, 256 * KiB);
  assert.equal(budget.take().length, 256 * KiB);
});

test("a connection's buffers: reused while not lent, two in turns for a body, all back to the budget once closed, lent ones too", () => {
  const budget = new ReadBudget(1024 * KiB);
  const buffers = new ReadBuffers(budget);
  const first = buffers.next();
  assert.equal(buffers.next(), first, 'the same buffer while it is not lent');
  buffers.lend(first);
  const second = buffers.next();
  assert.notEqual(second, first);
  buffers.giveBack(first);
  buffers.lend(second);
  assert.equal(buffers.next(), first, 'the spare comes back');
  assert.equal(budget.held, 512 * KiB);
  // Closed while `second` is lent to a write to the client: a connection is
  // closed with a write on its way only when the client's response is
  // destroyed, whose write callbacks node:http may never call. So it goes
  // back at once, and giving it back later changes nothing.
  buffers.close();
  assert.equal(budget.held, 0);
  buffers.giveBack(second);
  assert.equal(budget.held, 0);
  // Closing again, or a read node makes after the close, changes nothing.
  buffers.close();
  buffers.next();
  assert.equal(budget.held, 0);
});

test('spares beyond two go back to the budget', () => {
  const budget = new ReadBudget(2048 * KiB);
  const buffers = new ReadBuffers(budget);
  const lent: Buffer[] = [];
  for (let i = 0; i < 5; i++) {
    const b = buffers.next();
    buffers.lend(b);
    lent.push(b);
  }
  assert.equal(budget.held, 5 * 256 * KiB);
  for (const b of lent.slice(0, 4)) buffers.giveBack(b);
  // Four given back: two kept as spares, two dropped; the fifth is still lent.
  assert.equal(budget.held, 3 * 256 * KiB);
});

test('reads go on in the free part of the buffer in use while a TLS record fits, and the whole buffer is free once its bytes are out', () => {
  const budget = new ReadBudget(1024 * KiB);
  const buffers = new ReadBuffers(budget);
  const whole = buffers.next();
  // A read of 100 KiB whose bytes wait to be written.
  buffers.lend(whole, 100 * KiB);
  assert.ok(buffers.roomy);
  const after = buffers.next();
  assert.equal(after.buffer, whole.buffer, 'the same memory');
  assert.equal(after.byteOffset - whole.byteOffset, 100 * KiB);
  assert.equal(after.length, 156 * KiB);
  // The next read fills all but 10 KiB: too little for a record, so another buffer comes.
  buffers.lend(after, 146 * KiB);
  assert.equal(buffers.roomy, false);
  const other = buffers.next();
  assert.notEqual(other.buffer, whole.buffer);
  assert.equal(budget.held, 512 * KiB);
  // Both reads written: the first buffer is a spare, then in use again from its start.
  buffers.giveBack(whole);
  buffers.giveBack(after);
  buffers.lend(other, other.length);
  const again = buffers.next();
  assert.equal(again.buffer, whole.buffer);
  assert.equal(again.byteOffset, whole.byteOffset);
  assert.equal(again.length, 256 * KiB);
  buffers.giveBack(other);
  buffers.close();
  assert.equal(budget.held, 0);
});
