/**
 * All file-v1 templates of one domain: two tries, one for templates matched
 * against the path, one for templates with a `?` matched against path plus
 * query (SPEC §5). Templates with a query part are more specific, so they
 * are tried first.
 */
import type { IncomingTemplate } from '../templates/incoming-template.ts';
import { FileTrie, FileTrieBuilder, type TrieMatch, type TrieRule } from './file-trie.ts';
import { InternPool } from './intern-pool.ts';

/** A match, and the request query still to merge into the target ('' when the template consumed it). */
export interface FileIndexMatch<R extends TrieRule> extends TrieMatch<R> {
  readonly mergeQuery: string;
}

/** The interface every file-v1 matcher implements (the trie, and the reference one in tests). */
export interface FileMatcher<R extends TrieRule> {
  match(path: string, query: string): FileIndexMatch<R> | null;
}

export class FileIndex<R extends TrieRule> implements FileMatcher<R> {
  readonly #path: FileTrie<R> | null;
  readonly #query: FileTrie<R> | null;

  constructor(path: FileTrie<R>, query: FileTrie<R>) {
    this.#path = path.size > 0 ? path : null;
    this.#query = query.size > 0 ? query : null;
    Object.freeze(this);
  }

  get size(): number {
    return (this.#path?.size ?? 0) + (this.#query?.size ?? 0);
  }

  /** Hot path. */
  match(path: string, query: string): FileIndexMatch<R> | null {
    if (this.#query !== null && query !== '') {
      const m = this.#query.match(path + '?' + query);
      if (m !== null) return { rule: m.rule, values: m.values, mergeQuery: '' };
    }
    if (this.#path === null) return null;
    const m = this.#path.match(path);
    return m === null ? null : { rule: m.rule, values: m.values, mergeQuery: query };
  }
}

export class FileIndexBuilder<R extends TrieRule> {
  readonly #path: FileTrieBuilder<R>;
  readonly #query: FileTrieBuilder<R>;

  constructor(pool = new InternPool()) {
    this.#path = new FileTrieBuilder<R>(pool);
    this.#query = new FileTrieBuilder<R>(pool);
  }

  /** Rules are added in manifest order; a rule that one before it always answers for is left out, and that one returned (FileTrieBuilder.add). */
  add(template: IncomingTemplate, rule: R): R | null {
    return (template.withQuery ? this.#query : this.#path).add(template, rule);
  }

  build(): FileIndex<R> {
    return new FileIndex(this.#path.build(), this.#query.build());
  }
}
