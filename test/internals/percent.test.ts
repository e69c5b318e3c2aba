// src/templates/percent.ts: the dot-segment check (path traversal through a
// captured variable) is a hand-written scan on the hot path; it must agree
// with its definition, "some /-separated segment is . or ..".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hasDotSegment } from '../../src/templates/percent.ts';

const definition = (v: string) => v.split('/').some((s) => s === '.' || s === '..');

test('hasDotSegment: examples', () => {
  for (const v of ['.', '..', './x', 'x/.', 'x/..', 'a/../b', '/./', '../']) assert.equal(hasDotSegment(v), true, v);
  for (const v of ['', '1.2.0', '...', '.a', 'a.', 'x/..y', 'x/.y/', 'a/b', '/']) assert.equal(hasDotSegment(v), false, v);
});

test('hasDotSegment agrees with its definition on every string of up to 6 pieces', () => {
  const pieces = ['.', '/', 'a', '..'];
  const all = (n: number): string[] => (n === 0 ? [''] : all(n - 1).flatMap((s) => pieces.map((p) => s + p)));
  for (let n = 0; n <= 6; n++) for (const v of all(n)) assert.equal(hasDotSegment(v), definition(v), JSON.stringify(v));
});
