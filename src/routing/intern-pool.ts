/**
 * Shares equal pieces of compiled rules across one manifest: variable
 * lists, template expressions, matchers, short strings. A large manifest
 * repeats them in every rule; keeping one of each is what makes 100,000
 * rules fit in memory. One pool per compile, dropped with it.
 *
 * Sharing saves memory and nothing depends on it: a piece made twice is
 * only held twice. So each map is started afresh once it holds MAX_ENTRIES:
 * a map that grows rehashes every entry at once, and at a few hundred
 * thousand entries that alone stalls the event loop for tens of ms.
 */
const MAX_ENTRIES = 1 << 16;

export class InternPool {
  /** One map per kind of value, so that keys need no prefix (no string built per lookup). */
  readonly #kinds = new Map<string, Map<string, unknown>>();
  #strings = new Map<string, string>();

  /** The shared value of `kind` for `key`, made by `make` the first time. */
  get<T>(kind: string, key: string, make: () => T): T {
    let values = this.#kinds.get(kind);
    if (values === undefined || values.size >= MAX_ENTRIES) this.#kinds.set(kind, (values = new Map()));
    let v = values.get(key) as T | undefined;
    if (v === undefined) {
      v = make();
      values.set(key, v);
    }
    return v;
  }

  /** One copy of each equal string. */
  string(s: string): string {
    const shared = this.#strings.get(s);
    if (shared !== undefined) return shared;
    if (this.#strings.size >= MAX_ENTRIES) this.#strings = new Map();
    this.#strings.set(s, s);
    return s;
  }
}
