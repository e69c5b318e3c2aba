/**
 * Request ids: ULIDs (time-sortable, 26 Crockford base32 characters), so
 * that analytics lines of one request, and requests in time, sort together.
 * Randomness comes from a pooled buffer refilled in bulk.
 */
import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const pool = Buffer.alloc(16 * 256);
let offset = pool.length;

/** Hot path. A new ULID. */
export function requestId(now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  if (offset + 16 > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  let random = '';
  for (let i = 0; i < 16; i++) random += ALPHABET[pool[offset + i] & 31];
  offset += 16;
  return time + random;
}
