/**
 * The file-v1 index of one domain: a trie over `/`-separated path segments.
 *
 * Each node has a hash map of literal segments, then "edges": segments with
 * variables and tails (from a `{+var}` to the end of the template), sorted
 * by precedence (SPEC §3): at the first position where two differ, literal
 * text beats `{var}` beats `{+var}`; equal ranks keep manifest order.
 * Units of the same shape (`tool-{}.tgz`) share a node whatever their
 * variable names, so values are captured by position and named by the rule.
 *
 * Built once per manifest, then frozen: `add` after `build` throws.
 */
import { compareShapes, unitMatcher, type IncomingTemplate, type Unit, type UnitMatcher } from '../templates/incoming-template.ts';
import { linearRegExp } from '../templates/linear-regexp.ts';
import { InternPool } from './intern-pool.ts';

/** What the trie keeps at the end of a template: a rule that names the positional values. */
export interface TrieRule {
  /** The template's variables, by position. */
  readonly variables: IncomingTemplate['variables'];
}

/** What a lookup returns: the winning rule and its raw values by position. */
export interface TrieMatch<R> {
  readonly rule: R;
  readonly values: readonly string[];
}

/*
 * Memory: a 100,000-rule manifest holds a few nodes per rule, so they keep
 * nothing that only the builder needs (the shape is dropped once built, the
 * manifest order is the order of the lists), and a node with one edge or
 * one rule holds it without a list. Each field costs 8 bytes per node, each
 * list at least 56.
 */

/** One, or several in order. */
type OneOrMore<T> = T | T[];

/**
 * A node. The children of its edges are nodes too, entered through their
 * `matcher`: a segment with variables, or a tail, which matches the rest
 * of the subject and ends the template.
 */
interface TrieNode<R> {
  /** How a unit enters this node from its parent's edges; null for the root and literal children. */
  readonly matcher: UnitMatcher | null;
  readonly tail: boolean;
  /** Build time only (null once built): the unit's shape, which finds and sorts edges. */
  shape: string | null;
  literal: Map<string, TrieNode<R>> | null;
  /** In manifest order while building (of each edge's first rule), then in precedence order. */
  edges: OneOrMore<TrieNode<R>> | null;
  /** Rules that end here, in manifest order. */
  leaves: OneOrMore<R> | null;
}

function trieNode<R>(matcher: UnitMatcher | null, tail: boolean, shape: string | null): TrieNode<R> {
  return { matcher, tail, shape, literal: null, edges: null, leaves: null };
}

function isList<T>(items: OneOrMore<T>): items is T[] {
  return Array.isArray(items);
}

/** Adds to one-or-more items in order. */
function append<T>(items: OneOrMore<T> | null, item: T): OneOrMore<T> {
  if (items === null) return item;
  if (!isList(items)) return [items, item];
  items.push(item);
  return items;
}

/** The first of one-or-more items that passes `test` (no list made for one item). */
function find<T>(items: OneOrMore<T> | null, test: (item: T) => boolean): T | undefined {
  if (items === null) return undefined;
  return isList(items) ? items.find(test) : test(items) ? items : undefined;
}

/** Edges a node holds before the builder indexes them by shape (most nodes have one or two). */
const FEW_EDGES = 8;

export class FileTrie<R extends TrieRule> {
  readonly #root: TrieNode<R>;
  readonly size: number;

  constructor(root: TrieNode<R>, size: number) {
    this.#root = root;
    this.size = size;
    Object.freeze(this);
  }

  /** Hot path. The first rule in precedence order that matches, or null. */
  match(subject: string): TrieMatch<R> | null {
    const values: string[] = [];
    const rule = walk(this.#root, subject, 0, values);
    return rule === null ? null : { rule, values };
  }
}

/*
 * Depth-first search. The position in the subject is fixed by the depth, so
 * each node is visited at most once per lookup and the cost is bounded by the
 * number of nodes on matching branches, not by the number of rules: literal
 * segments are one hash lookup, and only the edges of the nodes on the way
 * are tried.
 */
function walk<R extends TrieRule>(node: TrieNode<R>, subject: string, pos: number, values: string[]): R | null {
  if (pos > subject.length) return node.leaves === null ? null : firstRule(node.leaves, values);
  const slash = subject.indexOf('/', pos);
  const end = slash === -1 ? subject.length : slash;
  const segment = subject.slice(pos, end);
  const child = node.literal?.get(segment);
  if (child !== undefined) {
    const found = walk(child, subject, end + 1, values);
    if (found !== null) return found;
  }
  const edges = node.edges;
  if (edges === null) return null;
  if (!isList(edges)) return enter(edges, subject, pos, end, segment, values);
  for (const edge of edges) {
    const found = enter(edge, subject, pos, end, segment, values);
    if (found !== null) return found;
  }
  return null;
}

/** Through one edge: its unit matches the segment (a tail: the rest of the subject), then on below it. */
function enter<R extends TrieRule>(edge: TrieNode<R>, subject: string, pos: number, end: number, segment: string, values: string[]): R | null {
  const m = edge.matcher!.exec(edge.tail ? subject.slice(pos) : segment);
  if (m === null) return null;
  const mark = values.length;
  for (let g = 1; g < m.length; g++) values.push(m[g]);
  const found = edge.tail ? firstRule(edge.leaves!, values) : walk(edge, subject, end + 1, values);
  if (found === null) values.length = mark;
  return found;
}

/** Rules with the same shape, in manifest order; a name used twice must capture equal values. */
function firstRule<R extends TrieRule>(rules: OneOrMore<R>, values: readonly string[]): R | null {
  if (!isList(rules)) return consistent(rules.variables, values) ? rules : null;
  for (const rule of rules) if (consistent(rule.variables, values)) return rule;
  return null;
}

/** A rule that names no variable twice matches every path of its shape (`consistent` always holds). */
function namesEachOnce(vars: IncomingTemplate['variables']): boolean {
  return new Set(vars.map((v) => v.name)).size === vars.length;
}

function consistent(vars: IncomingTemplate['variables'], values: readonly string[]): boolean {
  for (let i = 1; i < vars.length; i++) {
    for (let j = 0; j < i; j++) if (vars[j].name === vars[i].name && values[j] !== values[i]) return false;
  }
  return true;
}

/**
 * Rules must be added in manifest order. Then the first rule under an edge
 * is also the earliest, and a stable sort of each node's edges by rank
 * alone gives SPEC §3's order (equal ranks: manifest order).
 */
export class FileTrieBuilder<R extends TrieRule> {
  #root: TrieNode<R> | null = trieNode<R>(null, false, null);
  #size = 0;
  readonly #pool: InternPool;
  /** Build time only: the edges of crowded nodes, by shape. */
  #byShape = new Map<TrieNode<R>, Map<string, TrieNode<R>>>();

  /** `pool` shares matchers with the manifest's other domains. */
  constructor(pool = new InternPool()) {
    this.#pool = pool;
  }

  /**
   * Index one template, after those of the rules before it in the manifest,
   * and return null. `rule.variables` names the template's variables, by
   * position. A rule before it with the same shape (`/a/{v}` for `/a/{w}`)
   * answers every path this one matches, unless it names a variable twice
   * (`/a/{v}/{v}` matches equal values only): then this one is left out,
   * and that rule returned.
   */
  add(template: IncomingTemplate, rule: R): R | null {
    if (this.#root === null) throw new Error('FileTrieBuilder: add() after build()');
    let node = this.#root;
    for (const u of template.units) {
      if (u.kind === 'literal') {
        const text = u.tokens.length === 0 ? '' : (u.tokens[0] as { text: string }).text;
        node.literal ??= new Map();
        let next = node.literal.get(text);
        if (next === undefined) node.literal.set(text, (next = trieNode<R>(null, false, null)));
        node = next;
        continue;
      }
      let edge = this.#edgeOf(node, u.shape);
      if (edge === undefined) {
        edge = trieNode<R>(this.#matcher(u), u.kind === 'tail', u.shape);
        this.#addEdge(node, edge);
      }
      if (edge.tail) return this.#addLeaf(edge, rule);
      node = edge;
    }
    return this.#addLeaf(node, rule);
  }

  #addLeaf(node: TrieNode<R>, rule: R): R | null {
    const first = find(node.leaves, (r) => namesEachOnce(r.variables));
    if (first !== undefined) return first;
    node.leaves = append(node.leaves, rule);
    this.#size++;
    return null;
  }

  #edgeOf(node: TrieNode<R>, shape: string): TrieNode<R> | undefined {
    const indexed = this.#byShape.get(node);
    if (indexed !== undefined) return indexed.get(shape);
    return find(node.edges, (e) => e.shape === shape);
  }

  #addEdge(node: TrieNode<R>, edge: TrieNode<R>): void {
    node.edges = append(node.edges, edge);
    const indexed = this.#byShape.get(node);
    if (indexed !== undefined) indexed.set(edge.shape!, edge);
    else if (isList(node.edges) && node.edges.length > FEW_EDGES) this.#byShape.set(node, new Map(node.edges.map((e) => [e.shape!, e])));
  }

  #matcher(u: Unit): UnitMatcher {
    return this.#pool.get(u.kind === 'tail' ? 'tail' : 'segment', u.shape, () => unitMatcher(u, linearRegExp));
  }

  /** Sort every node's edges by precedence and freeze the trie. */
  build(): FileTrie<R> {
    if (this.#root === null) throw new Error('FileTrieBuilder: build() called twice');
    const root = this.#root;
    this.#root = null;
    finish(root);
    this.#byShape = new Map();
    return new FileTrie(root, this.#size);
  }
}

/** Edges in precedence order; every list trimmed to its length (lists grown by push keep spare room); shapes dropped. */
function finish<R>(node: TrieNode<R>): void {
  if (node.leaves !== null && isList(node.leaves)) node.leaves = node.leaves.slice();
  if (node.literal !== null) for (const child of node.literal.values()) finish(child);
  const edges = node.edges;
  if (edges === null) return;
  if (!isList(edges)) return finishEdge(edges);
  // Stable: equal ranks keep the order of their first rules.
  node.edges = edges.sort((a, b) => compareShapes(a.shape!, b.shape!)).slice();
  for (const e of node.edges) finishEdge(e);
}

function finishEdge<R>(edge: TrieNode<R>): void {
  finish(edge);
  edge.shape = null;
}
