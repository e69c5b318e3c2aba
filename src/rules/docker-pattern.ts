/**
 * docker-v2 `pattern`: a glob over an image name (SPEC §4). Per
 * `/`-separated segment, `*` matches any run of characters within the
 * segment, `{a,b}` gives alternatives (which may nest), and `\` escapes
 * `* { } ,`. Compiled to a regex once, at load time; it runs on the
 * linear-time engine, so `*a*a*a*` cannot backtrack.
 */
import { linearRegExp } from '../templates/linear-regexp.ts';

export class PatternSyntaxError extends Error {
  readonly code = 'PATTERN_SYNTAX';
}

function escapeChar(ch: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(ch) ? '\\' + ch : ch;
}

/** Translate a glob into regex source; throws PatternSyntaxError. */
export function globSource(pattern: string): string {
  let out = '';
  let depth = 0;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\') {
      const next = pattern[++i];
      if (next === undefined) throw new PatternSyntaxError('pattern ends with an escape "\\"');
      out += escapeChar(next);
    } else if (ch === '*') out += '[^/]*';
    else if (ch === '{') {
      depth++;
      out += '(?:';
    } else if (ch === '}') {
      if (depth === 0) throw new PatternSyntaxError(`unmatched "}" at offset ${i}`);
      depth--;
      out += ')';
    } else if (ch === ',' && depth > 0) out += '|';
    else out += escapeChar(ch);
  }
  if (depth > 0) throw new PatternSyntaxError('unclosed "{"');
  return out;
}

/** A compiled pattern: `test(name)` says whether an image name matches. */
export function compileImagePattern(pattern: string): RegExp {
  return linearRegExp(`^${globSource(pattern)}$`);
}
