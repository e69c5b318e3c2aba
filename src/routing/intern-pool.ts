/**
 * Shares equal pieces of compiled rules across one manifest: variable
 * lists, template expressions, matchers, short strings. A large manifest
 * repeats them in every rule; keeping one of each is what makes 100,000
 * rules fit in memory. One pool per compile, dropped with it.
 */
export class InternPool {
  readonly #values = new Map<string, unknown>();
  /** Strings by themselves: a key without a prefix needs no concatenation. */
  readonly #strings = new Map<string, string>();

  /** The shared value for `key`, made by `make` the first time. */
  get<T>(key: string, make: () => T): T {
    let v = this.#values.get(key) as T | undefined;
    if (v === undefined) {
      v = make();
      this.#values.set(key, v);
    }
    return v;
  }

  /** One copy of each equal string. */
  string(s: string): string {
    const shared = this.#strings.get(s);
    if (shared !== undefined) return shared;
    this.#strings.set(s, s);
    return s;
  }
}
