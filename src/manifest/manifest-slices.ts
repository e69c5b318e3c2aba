/**
 * Parsing a large manifest without stalling the event loop. A 100,000-rule
 * manifest is about 25 MB of JSON: one `JSON.parse` of it blocks for
 * ~100 ms. Instead, the text is scanned for the elements of the top-level
 * `"rules"` array, each rule is parsed on its own, and the caller yields to
 * the event loop between batches. The object around the array is parsed
 * with the array emptied, so every other key is still checked.
 *
 * Only the expected shape is handled here; anything else (a syntax error,
 * no `"rules"` array) returns null and the caller falls back to
 * `JSON.parse`, whose error message is the one users see.
 */
import { skipSpace, stringEnd, valueEnd } from '../json-scan.ts';

/** A cursor over the rules, then the outer object's text with `rules` emptied. */
export interface RuleSlices {
  /** Parses up to `max` more rules (each with its JSON text); an empty array at the end; null on malformed text. */
  next(max: number): RuleSlice[] | null;
  /** Once every rule is read: the manifest with `"rules": []`, or null if malformed. */
  outer(): string | null;
}

export interface RuleSlice {
  readonly rule: unknown;
  readonly text: string;
}

/** Inside the rules array, a scalar ends at a separator, a closing bracket or white space. */
const IN_ARRAY = ',]} \t\r\n';

/** Finds the top-level `"rules": [` and returns a cursor over its elements. */
export function sliceRules(text: string): RuleSlices | null {
  let i = skipSpace(text, 0);
  if (text[i] !== '{') return null;
  i++;
  // Walk the outer object's keys until "rules".
  for (;;) {
    i = skipSpace(text, i);
    if (text[i] !== '"') return null;
    const keyEnd = stringEnd(text, i);
    if (keyEnd < 0) return null;
    const key = text.slice(i + 1, keyEnd - 1);
    i = skipSpace(text, keyEnd);
    if (text[i] !== ':') return null;
    i = skipSpace(text, i + 1);
    if (key === 'rules' && text[i] === '[') break;
    const end = valueEnd(text, i, IN_ARRAY);
    if (end < 0) return null;
    i = skipSpace(text, end);
    if (text[i] !== ',') return null;
    i++;
  }
  const arrayStart = i;
  let cursor = skipSpace(text, arrayStart + 1);
  let done = text[cursor] === ']';
  return {
    outer: () => (done ? text.slice(0, arrayStart) + '[]' + text.slice(cursor + 1) : null),
    next(max) {
      const rules: RuleSlice[] = [];
      while (!done && rules.length < max) {
        const end = valueEnd(text, cursor, IN_ARRAY);
        if (end < 0) return null;
        const slice = text.slice(cursor, end);
        try {
          rules.push({ rule: JSON.parse(slice), text: slice });
        } catch {
          return null;
        }
        cursor = skipSpace(text, end);
        if (text[cursor] === ']') done = true;
        else if (text[cursor] === ',') cursor = skipSpace(text, cursor + 1);
        else return null;
      }
      return rules;
    },
  };
}
