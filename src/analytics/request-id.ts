/**
 * Request ids: ULIDs (time-sortable, 26 Crockford base32 characters), so
 * that analytics lines of one request, and requests in time, sort together.
 * Randomness comes from a pooled buffer refilled in bulk and turned into
 * base32 characters in place, so an id costs one string slice; the time
 * part is reused within a millisecond.
 */
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const CODES = Buffer.from(ALPHABET, 'latin1');
const pool = Buffer.alloc(16 * 256);
let offset = pool.length;
let lastMs = -1;
let lastTime = '';

/** The 10-character time part of a ULID. */
function timePart(ms: number): string {
  let time = '';
  let t = ms;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  return time;
}

/** Hot path. A new ULID. */
export function requestId(now = Date.now()): string {
  if (now !== lastMs) {
    lastMs = now;
    lastTime = timePart(now);
  }
  if (offset + 16 > pool.length) {
    randomFillSync(pool);
    for (let i = 0; i < pool.length; i++) pool[i] = CODES[pool[i] & 31];
    offset = 0;
  }
  const random = pool.toString('latin1', offset, offset + 16);
  offset += 16;
  return lastTime + random;
}
