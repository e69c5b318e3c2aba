/**
 * The file-v1 index of one domain: a trie over `/`-separated path segments.
 *
 * Each node has a hash map of literal segments, then "edges": segments with
 * variables and tails (from a `{+var}` to the end of the template), sorted
 * by precedence (SPEC §3): at the first position where two differ, literal
 * text beats `{var}` beats `{+var}`; equal ranks keep manifest order.
 * Units of the same shape (`tool-{}.tgz`) share a node whatever their
 * variable names, so values are captured by position and named at the leaf.
 *
 * Built once per manifest, then frozen: `add` after `build` throws.
 */
import { compareRanks, unitMatcher, type IncomingTemplate, type Unit, type UnitMatcher } from '../templates/incoming-template.ts';
import { linearRegExp } from '../templates/linear-regexp.ts';
import { InternPool } from './intern-pool.ts';

/** A rule at the end of a template: how to name the positional values. */
export interface Leaf<R> {
  readonly rule: R;
  readonly order: number;
  /** The template's variables, by position. */
  readonly variables: IncomingTemplate['variables'];
}

/** What a lookup returns: the winning rule and its raw values by position. */
export interface TrieMatch<R> {
  readonly leaf: Leaf<R>;
  readonly values: readonly string[];
}

interface Edge<R> {
  /** Build time only (sorting); dropped once the trie is built. */
  unit: Unit | null;
  readonly matcher: UnitMatcher;
  order: number;
  /** For segment edges: where the template goes on. */
  readonly child: TrieNode<R> | null;
  /** For tail edges: the rules that end with this tail. */
  readonly leaves: Leaf<R>[];
}

/** Edges a node holds before the builder indexes them by shape (most nodes have one or two). */
const FEW_EDGES = 8;

class TrieNode<R> {
  literal: Map<string, TrieNode<R>> | null = null;
  /** In insertion order while building, then in precedence order. */
  edges: Edge<R>[] | null = null;
  leaves: Leaf<R>[] | null = null;
  /** Build-time only, once a node has more than FEW_EDGES edges: edges by shape. */
  byShape: Map<string, Edge<R>> | null = null;
}

/** Build time: the node's edge for units of `shape`, if any. */
function edgeOf<R>(node: TrieNode<R>, shape: string): Edge<R> | undefined {
  if (node.byShape !== null) return node.byShape.get(shape);
  if (node.edges !== null) for (const e of node.edges) if (e.unit!.shape === shape) return e;
  return undefined;
}

function addEdge<R>(node: TrieNode<R>, edge: Edge<R>): void {
  (node.edges ??= []).push(edge);
  if (node.byShape !== null) node.byShape.set(edge.unit!.shape, edge);
  else if (node.edges.length > FEW_EDGES) node.byShape = new Map(node.edges.map((e) => [e.unit!.shape, e]));
}

export class FileTrie<R> {
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
    const leaf = walk(this.#root, subject, 0, values);
    return leaf === null ? null : { leaf, values };
  }
}

/*
 * Depth-first search. The position in the subject is fixed by the depth, so
 * each node is visited at most once per lookup and the cost is bounded by the
 * number of nodes on matching branches, not by the number of rules: literal
 * segments are one hash lookup, and only the edges of the nodes on the way
 * are tried.
 */
function walk<R>(node: TrieNode<R>, subject: string, pos: number, values: string[]): Leaf<R> | null {
  if (pos > subject.length) return node.leaves === null ? null : firstLeaf(node.leaves, values);
  const slash = subject.indexOf('/', pos);
  const end = slash === -1 ? subject.length : slash;
  const segment = subject.slice(pos, end);
  const child = node.literal?.get(segment);
  if (child !== undefined) {
    const found = walk(child, subject, end + 1, values);
    if (found !== null) return found;
  }
  if (node.edges === null) return null;
  for (const edge of node.edges) {
    const tail = edge.child === null;
    const m = edge.matcher.exec(tail ? subject.slice(pos) : segment);
    if (m === null) continue;
    const mark = values.length;
    for (let g = 1; g < m.length; g++) values.push(m[g]);
    const found = tail ? firstLeaf(edge.leaves, values) : walk(edge.child, subject, end + 1, values);
    if (found !== null) return found;
    values.length = mark;
  }
  return null;
}

/** Rules with the same shape, in manifest order; a name used twice must capture equal values. */
function firstLeaf<R>(leaves: readonly Leaf<R>[], values: readonly string[]): Leaf<R> | null {
  for (const leaf of leaves) if (consistent(leaf.variables, values)) return leaf;
  return null;
}

function consistent(vars: IncomingTemplate['variables'], values: readonly string[]): boolean {
  for (let i = 1; i < vars.length; i++) {
    for (let j = 0; j < i; j++) if (vars[j].name === vars[i].name && values[j] !== values[i]) return false;
  }
  return true;
}

export class FileTrieBuilder<R> {
  #root: TrieNode<R> | null = new TrieNode<R>();
  #size = 0;
  readonly #pool: InternPool;

  /** `pool` shares matchers (and literal keys) with the manifest's other domains. */
  constructor(pool = new InternPool()) {
    this.#pool = pool;
  }

  /** Index one template; `order` is the rule's manifest position. */
  add(template: IncomingTemplate, rule: R, order: number): void {
    if (this.#root === null) throw new Error('FileTrieBuilder: add() after build()');
    // The variable list is shared across rules by the caller (compileFileV1 interns it).
    const leaf: Leaf<R> = { rule, order, variables: template.variables };
    let node = this.#root;
    for (const u of template.units) {
      if (u.kind === 'literal') {
        const text = u.tokens.length === 0 ? '' : (u.tokens[0] as { text: string }).text;
        node.literal ??= new Map();
        let next = node.literal.get(text);
        if (next === undefined) node.literal.set(text, (next = new TrieNode<R>()));
        node = next;
        continue;
      }
      let edge = edgeOf(node, u.shape);
      if (edge === undefined) {
        edge = { unit: u, matcher: this.#matcher(u), order, child: u.kind === 'tail' ? null : new TrieNode<R>(), leaves: [] };
        addEdge(node, edge);
      }
      if (edge.child === null) {
        edge.leaves.push(leaf);
        this.#size++;
        return;
      }
      node = edge.child;
    }
    (node.leaves ??= []).push(leaf);
    this.#size++;
  }

  #matcher(u: Unit): UnitMatcher {
    return this.#pool.get(`${u.kind === 'tail' ? 't' : 'm'}\u0000${u.shape}`, () => unitMatcher(u, linearRegExp));
  }

  /** Sort every node's edges by precedence and freeze the trie. */
  build(): FileTrie<R> {
    if (this.#root === null) throw new Error('FileTrieBuilder: build() called twice');
    const root = this.#root;
    this.#root = null;
    finish(root);
    return new FileTrie(root, this.#size);
  }
}

/** Returns the smallest manifest order under the node, used to order equal-rank edges. */
function finish<R>(node: TrieNode<R>): number {
  let min = Infinity;
  // Lists grown by push keep spare capacity; exact copies are kept instead.
  if (node.leaves !== null) node.leaves = node.leaves.slice();
  if (node.leaves !== null) for (const l of node.leaves) min = Math.min(min, l.order);
  if (node.literal !== null) for (const child of node.literal.values()) min = Math.min(min, finish(child));
  const edges = node.edges;
  if (edges !== null) {
    for (const e of edges) {
      e.order = e.child === null ? e.leaves[0].order : finish(e.child);
      min = Math.min(min, e.order);
    }
    edges.sort((a, b) => compareRanks(a.unit!, b.unit!) || a.order - b.order);
    for (const e of edges) e.unit = null;
    node.edges = edges.map((e) => (e.child === null ? { ...e, leaves: e.leaves.slice() } : e));
    node.byShape = null;
  }
  return min;
}
