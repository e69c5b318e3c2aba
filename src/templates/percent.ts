/**
 * Percent-encoding as RFC 3986 §2 and RFC 6570 §3.2.1 define it, and a
 * manifest URL's text made ASCII. Pure functions on strings; the hot path
 * calls them on captured variables, and `upperTriplets` on the path and
 * query of a file-v1 lookup.
 */
import { domainToASCII } from 'node:url';

const HEX = '0123456789ABCDEF';

/** RFC 3986 §2.3 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~" */
const UNRESERVED_ONLY = /^[A-Za-z0-9\-._~]*$/;
/** unreserved / reserved (RFC 3986 §2.2) / pct-encoded triplets */
const RESERVED_OK = /^(?:[A-Za-z0-9\-._~:/?#[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;

function isUnreservedCode(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e
  );
}

function isReservedCode(c: number): boolean {
  // : / ? # [ ] @ ! $ & ' ( ) * + , ; =
  return ":/?#[]@!$&'()*+,;=".includes(String.fromCharCode(c));
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

function pushEncoded(out: string[], ch: string): void {
  for (const byte of Buffer.from(ch, 'utf8')) out.push('%', HEX[byte >> 4], HEX[byte & 15]);
}

/**
 * Encode everything but unreserved characters (RFC 6570 "U", RFC 3986 §2.1).
 * Space becomes `%20`, never `+`.
 */
export function encodeUnreserved(value: string): string {
  if (UNRESERVED_ONLY.test(value)) return value;
  const out: string[] = [];
  for (const ch of value) {
    if (ch.length === 1 && isUnreservedCode(ch.charCodeAt(0))) out.push(ch);
    else pushEncoded(out, ch);
  }
  return out.join('');
}

/**
 * Keep unreserved and reserved characters and existing `%XX` triplets, encode
 * the rest (RFC 6570 "U+R", used by `{+var}` and `{#var}`).
 */
export function encodeReserved(value: string): string {
  if (RESERVED_OK.test(value)) return value;
  const out: string[] = [];
  const chars = Array.from(value);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    const c = ch.charCodeAt(0);
    if (ch.length === 1 && (isUnreservedCode(c) || isReservedCode(c))) out.push(ch);
    else if (ch === '%' && i + 2 < chars.length && isHex(code(chars[i + 1])) && isHex(code(chars[i + 2]))) out.push(ch);
    else pushEncoded(out, ch);
  }
  return out.join('');
}

/** What a URI and a header field hold as they are: printable ASCII but space. */
const PRINTABLE_ONLY = /^[\x21-\x7e]*$/;
const NOT_PRINTABLE = /[^\x21-\x7e]/gu;

/**
 * Characters a URI cannot hold as they are (non-ASCII, space, controls)
 * percent-encoded as UTF-8, everything else kept: what a browser sends for
 * a path typed with them. Used on a manifest's URLs and path literals, once
 * at load: a request path holds them so, and a `Location` field is ASCII
 * (node refuses an answer with a character past U+00FF in one).
 */
export function encodeNonPrintable(value: string): string {
  if (PRINTABLE_ONLY.test(value)) return value;
  return value.replace(NOT_PRINTABLE, (ch) => {
    const out: string[] = [];
    pushEncoded(out, ch);
    return out.join('');
  });
}

/** `scheme://` and a host name with a character past ASCII, before the port or path. */
const NON_ASCII_HOST = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#@:{}]*[^\x00-\x7f][^/?#@:{}]*)/u;

/**
 * An absolute URL's host name in its ASCII form (IDNA), as a browser sends
 * it: `https://пример.рф/x` → `https://xn--e1afmkfd.xn--p1ai/x`. Percent-
 * encoding a host name would make it another (invalid) one. Anything else
 * is returned as it is.
 */
export function asciiHost(url: string): string {
  const m = NON_ASCII_HOST.exec(url);
  if (m === null) return url;
  const host = domainToASCII(m[2]);
  return host === '' ? url : m[1] + host + url.slice(m[0].length);
}

/** A `%XX` triplet with a lower-case hex digit. */
const LOWER_TRIPLET = /%(?:[a-f][0-9A-Fa-f]|[0-9A-F][a-f])/;
const TRIPLET = /%[0-9A-Fa-f]{2}/g;

/**
 * Hot path (file-v1 requests; a test when the text has a `%`). `%XX`
 * triplets in upper case, the form RFC 3986 §6.2.2.1 normalizes to: curl
 * sends `/%d1%84`, browsers and pip `/%D1%84`, the same path.
 */
export function upperTriplets(text: string): string {
  return text.includes('%') && LOWER_TRIPLET.test(text) ? text.replace(TRIPLET, (t) => t.toUpperCase()) : text;
}

function code(ch: string | undefined): number {
  return ch === undefined ? -1 : ch.charCodeAt(0);
}

/**
 * Decode `%XX` triplets as UTF-8. Returns null for malformed input (a bare `%`
 * or bytes that are not UTF-8), which callers turn into a 400.
 */
export function percentDecode(value: string): string | null {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return null;
  }
}

/** Decode an `application/x-www-form-urlencoded` component (`+` is a space). */
export function formDecode(value: string): string | null {
  return percentDecode(value.includes('+') ? value.replaceAll('+', ' ') : value);
}

/** C0 controls and DEL: never allowed in a decoded variable (header injection). */
const CONTROL = /[\u0000-\u001f\u007f]/;

/** True when a decoded value could inject a header line or a control byte. */
export function hasControl(value: string): boolean {
  return CONTROL.test(value);
}

/** True when any `/`-separated segment of the decoded value is `.` or `..`. */
export function hasDotSegment(value: string): boolean {
  // Hot path (every captured variable, and versions have dots): a scan, no split.
  for (let dot = value.indexOf('.'); dot !== -1; dot = value.indexOf('.', dot + 1)) {
    const start = dot === 0 || value.charCodeAt(dot - 1) === SLASH;
    if (!start) continue;
    const end = dot + 1 === value.length || value.charCodeAt(dot + 1) === SLASH;
    const twoDots = value.charCodeAt(dot + 1) === DOT && (dot + 2 === value.length || value.charCodeAt(dot + 2) === SLASH);
    if (end || twoDots) return true;
  }
  return false;
}

const SLASH = 0x2f;
const DOT = 0x2e;

/** RFC 3986 §3.3 pchar (plus `/`), and §3.4 query characters (plus `/` and `?`). */
const PATH_OK = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/])*$/;
const QUERY_OK = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?])*$/;
const PCHAR = "!$&'()*+,;=:@";

function reencode(text: string, keep: string): string | null {
  const out: string[] = [];
  // Split on percent triplets so that each decoded run is re-encoded once.
  for (const piece of text.split(/((?:%[0-9A-Fa-f]{2})+)/)) {
    if (piece === '') continue;
    if (piece[0] === '%') {
      const decoded = percentDecode(piece);
      if (decoded === null) return null;
      // An encoded reserved character was encoded for a reason: it stays encoded.
      for (const ch of decoded) out.push(keepOrEncode(ch, ''));
    } else {
      if (piece.includes('%')) return null;
      for (const ch of piece) out.push(keepOrEncode(ch, keep));
    }
  }
  return out.join('');
}

function keepOrEncode(ch: string, keep: string): string {
  if (ch.length === 1 && (isUnreservedCode(ch.charCodeAt(0)) || keep.includes(ch))) return ch;
  return encodeUnreserved(ch);
}

/**
 * Re-encode a request path for a redirect: `%XX` are decoded then encoded
 * again with RFC 3986 pchar rules, raw characters outside pchar are encoded.
 * `/hello%20world` stays `/hello%20world`. Null for malformed encoding.
 */
export function normalizePath(path: string): string | null {
  return PATH_OK.test(path) ? path : reencode(path, PCHAR + '/');
}

/** Same for a query string; `&` and `=` keep their meaning. */
export function normalizeQuery(query: string): string | null {
  return QUERY_OK.test(query) ? query : reencode(query, PCHAR + '/?');
}
