/**
 * Finding where a JSON value ends in a text, without parsing it: strings
 * and brackets are matched, scalars run to a delimiter. Used to cut a text
 * into values that are then parsed one at a time (manifest rules, request
 * body events).
 */

const QUOTE = 34;
const BACKSLASH = 92;
const OPEN_BRACE = 123;
const OPEN_BRACKET = 91;
const CLOSE_BRACE = 125;
const CLOSE_BRACKET = 93;

/** Offset of the first character at or after `i` that is not JSON white space. */
export function skipSpace(text: string, i: number): number {
  while (i < text.length && ' \t\r\n'.includes(text[i])) i++;
  return i;
}

/** Offset just after the string starting at `i` (a quote), or -1 if it is not closed. */
export function stringEnd(text: string, i: number): number {
  for (let k = i + 1; k < text.length; k++) {
    const c = text.charCodeAt(k);
    if (c === BACKSLASH) k++;
    else if (c === QUOTE) return k + 1;
  }
  return -1;
}

/**
 * Offset just after the JSON value starting at `i`, or -1 if it is not
 * closed or nests more than `maxDepth` objects and arrays deep. A scalar
 * (number, literal) runs to the first of `scalarEnds`.
 */
export function valueEnd(text: string, i: number, scalarEnds: string, maxDepth = Infinity): number {
  const c = text[i];
  if (c === '"') return stringEnd(text, i);
  if (c !== '{' && c !== '[') {
    let k = i;
    while (k < text.length && !scalarEnds.includes(text[k])) k++;
    return k;
  }
  let depth = 0;
  for (let k = i; k < text.length; k++) {
    const ch = text.charCodeAt(k);
    if (ch === QUOTE) {
      k = stringEnd(text, k) - 1;
      if (k < 0) return -1;
    } else if (ch === OPEN_BRACE || ch === OPEN_BRACKET) {
      if (++depth > maxDepth) return -1;
    } else if (ch === CLOSE_BRACE || ch === CLOSE_BRACKET) {
      depth--;
      if (depth === 0) return k + 1;
    }
  }
  return -1;
}
