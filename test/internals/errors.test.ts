// The error table: codes unique, statuses 4xx/5xx, each documented in README.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ERRORS } from '../../src/errors.ts';

test('every error code has a 4xx/5xx status and a message', () => {
  for (const [code, e] of Object.entries(ERRORS)) {
    assert.match(code, /^[A-Z_]+$/);
    assert.ok(e.status >= 400 && e.status < 600, code);
    assert.ok(e.message.length > 0, code);
  }
});

test('every error code is documented in the README, with its status', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const [code, e] of Object.entries(ERRORS)) {
    assert.match(readme, new RegExp(`\\| \`${code}\` \\| ${e.status} \\|`), code);
  }
});
