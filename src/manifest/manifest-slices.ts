/**
 * Parsing a large manifest without stalling the event loop. A 100,000-rule
 * manifest is about 25 MB of JSON: one `JSON.parse` of it blocks for
 * ~100 ms. Instead, the text is scanned for the elements of the top-level
 * `"rules"` array; each rule can be parsed on its own (or compared with the
 * same rule's text in the previous manifest, and not parsed at all), and
 * the caller yields to the event loop between batches. The object around
 * the array is parsed with the array emptied, so every other key is still
 * checked.
 *
 * Only the expected shape is handled here; anything else (a syntax error,
 * no `"rules"` array) returns null and the caller falls back to
 * `JSON.parse`, whose error message is the one users see.
 */
import { skipSpace, stringEnd, valueEnd } from '../json-scan.ts';

/** A cursor over the rules' texts, then the outer object's text with `rules` emptied. */
export interface RuleSlices {
  /** After `advance()` returned true: the current rule's text is `text.slice(start, end)`. */
  readonly start: number;
  readonly end: number;
  /** Moves to the next rule: true, false past the last one, null on malformed text. */
  advance(): boolean | null;
  /** Once every rule is read: the manifest with `"rules": []`, or null if malformed. */
  outer(): string | null;
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
  return new RuleCursor(text, i);
}

class RuleCursor implements RuleSlices {
  start = 0;
  end = 0;
  readonly #text: string;
  /** Offset of the rules array's `[`. */
  readonly #arrayStart: number;
  #cursor: number;
  #done: boolean;

  constructor(text: string, arrayStart: number) {
    this.#text = text;
    this.#arrayStart = arrayStart;
    this.#cursor = skipSpace(text, arrayStart + 1);
    this.#done = text[this.#cursor] === ']';
  }

  advance(): boolean | null {
    if (this.#done) return false;
    const text = this.#text;
    const end = valueEnd(text, this.#cursor, IN_ARRAY);
    if (end < 0) return null;
    this.start = this.#cursor;
    this.end = end;
    const next = skipSpace(text, end);
    if (text[next] === ']') this.#done = true;
    else if (text[next] !== ',') return null;
    this.#cursor = this.#done ? next : skipSpace(text, next + 1);
    return true;
  }

  outer(): string | null {
    return this.#done ? this.#text.slice(0, this.#arrayStart) + '[]' + this.#text.slice(this.#cursor + 1) : null;
  }
}
