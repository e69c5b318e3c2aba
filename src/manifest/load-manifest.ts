/**
 * Manifest file → routing table: read, parse, check against the schema,
 * compile. Problems come back with JSON pointers; nothing here throws for a
 * bad manifest, so callers decide (exit at start-up, keep the old table on
 * reload).
 */
import { open, type FileHandle } from 'node:fs/promises';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { compileManifest, ManifestCompiler, normalizeDomain, TimeSlicer, yieldToEventLoop } from '../routing/compile.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import { ProblemSink } from './problems.ts';
import { createHash, type Hash } from 'node:crypto';
import type { ManifestProblem } from '../errors.ts';
import { checkShape } from './schema-check.ts';
import { sliceRules } from './manifest-slices.ts';

export interface LoadResult {
  readonly table: RoutingTable | null;
  readonly problems: ProblemSink;
  /** The file's text, or null when it could not be read. */
  readonly text: string | null;
}

/** Rules parsed at a time, between two checks of the time slice. */
const BATCH = 16;

/**
 * Parse, check and compile manifest text (start-up, reloads, validate), in
 * slices, so that a large manifest never stalls the requests being served.
 * Each slice of rules is compiled as soon as it is parsed. With the table
 * of the previous manifest (reloads), domains whose rules did not change
 * are taken over from it instead of compiled again.
 */
export async function loadManifestText(text: string, knownHash?: string, previous: RoutingTable | null = null): Promise<LoadResult> {
  const hash = knownHash ?? (await hashInSlices(text));
  const sliced = await compileInSlices(text, hash, previous);
  if (sliced !== null) return { ...sliced, text };
  // Not the expected shape: one plain parse gives the real error.
  const problems = new ProblemSink();
  const syntax = await syntaxError(text);
  if (syntax !== null) {
    problems.error('', `not valid JSON: ${syntax}`);
    return { table: null, problems, text };
  }
  // Valid JSON of another shape (rare): its problems come from the schema.
  const manifest: unknown = JSON.parse(text);
  if (!checkShape(manifest, problems)) return { table: null, problems, text };
  const { table } = await compileManifest(manifest, hash, problems);
  return { table, problems, text };
}

/** Texts parsed on the event loop to find their error; a larger one (a manifest cut short while written) is parsed in a worker. */
const PARSE_IN_PLACE = 1 << 20;

/**
 * JSON.parse's error for the text, or null when it is valid JSON. A 23 MB
 * manifest takes ~100 ms to parse: in a worker thread, so that the
 * requests being served do not wait for the message.
 */
async function syntaxError(text: string): Promise<string | null> {
  const inPlace = () => {
    try {
      JSON.parse(text);
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  };
  if (text.length <= PARSE_IN_PLACE) return inPlace();
  const parser = `const { parentPort, workerData } = require('node:worker_threads');
    try { JSON.parse(workerData); parentPort.postMessage(null); } catch (e) { parentPort.postMessage(e.message); }`;
  try {
    const worker = new Worker(parser, { eval: true, workerData: text });
    const [message] = (await once(worker, 'message')) as [string | null];
    await worker.terminate();
    return message;
  } catch {
    return inPlace();
  }
}

/**
 * The manifest's rules by domain, as written: each domain's print (SHA-256
 * of its rules' indices and JSON texts, in order), which tells a reload
 * whether the domain changed, and for reloads the rules themselves.
 */
class DomainGroups {
  readonly #groups = new Map<string | null, { print: Hash; indices: number[]; texts: string[] }>();
  readonly #keepRules: boolean;

  constructor(keepRules: boolean) {
    this.#keepRules = keepRules;
  }

  /** Rules without a usable domain are grouped under null: always compiled (and reported). */
  add(rule: unknown, index: number, json: string): void {
    const raw = typeof rule === 'object' && rule !== null ? (rule as { domain?: unknown }).domain : undefined;
    const domain = typeof raw === 'string' ? normalizeDomain(raw) : null;
    let group = this.#groups.get(domain);
    if (group === undefined) this.#groups.set(domain, (group = { print: createHash('sha256'), indices: [], texts: [] }));
    group.print.update(`${index}\n${json}\n`);
    if (!this.#keepRules) return;
    group.indices.push(index);
    group.texts.push(json);
  }

  /** Once every rule is added: each domain's print, and its rules (kept for reloads). */
  *done(): Generator<{ domain: string | null; print: string; indices: readonly number[]; texts: readonly string[] }> {
    for (const [domain, { print, indices, texts }] of this.#groups) yield { domain, print: print.digest('hex'), indices, texts };
  }
}

/**
 * Parse and compile the rules slice by slice; null when the text is not
 * shaped as expected. Without a previous table each rule is compiled as it
 * is parsed. With one, rules are first grouped by domain; a domain whose
 * rules are those the previous table was compiled from (same text, same
 * place) is taken over, and only the others are compiled.
 */
async function compileInSlices(text: string, hash: string, previous: RoutingTable | null): Promise<Omit<LoadResult, 'text'> | null> {
  const slices = sliceRules(text);
  if (slices === null) return null;
  const compiler = new ManifestCompiler();
  const slicer = new TimeSlicer();
  const groups = new DomainGroups(previous !== null);
  let index = 0;
  let batch = slices.next(BATCH);
  for (; batch !== null && batch.length > 0; batch = slices.next(BATCH)) {
    for (const { rule, text: json } of batch) {
      if (previous === null) compiler.add(rule as Record<string, unknown>, index);
      groups.add(rule, index, json);
      index++;
    }
    if (slicer.due()) await slicer.yield();
  }
  // Malformed (a file read while it was being written, often): nothing more to compile.
  if (batch === null) return null;
  const prints = new Map<string, string>();
  for (const { domain, print, indices, texts } of groups.done()) {
    if (domain !== null) prints.set(domain, print);
    if (previous === null) continue;
    const prior = domain === null ? undefined : previous.compiled.get(domain);
    if (prior !== undefined && prior.print === print) {
      compiler.reuse(domain!, prior);
      continue;
    }
    for (let k = 0; k < indices.length; k++) {
      compiler.add(JSON.parse(texts[k]) as Record<string, unknown>, indices[k]);
      if (slicer.due()) await slicer.yield();
    }
  }
  if (previous !== null) {
    // Domain by domain, problems come out of order: back in manifest order, as a full compile gives them.
    inRuleOrder(compiler.problems.errors);
    inRuleOrder(compiler.problems.warnings);
  }
  const outerText = slices.outer();
  let outer: unknown;
  try {
    outer = outerText === null ? null : JSON.parse(outerText);
  } catch {
    outer = null;
  }
  if (outer === null) return null;
  // Problems of the outer object come first, as a plain parse reports them.
  const problems = new ProblemSink();
  if (!checkShape(outer, problems)) return { table: null, problems };
  problems.errors.push(...compiler.problems.errors);
  problems.warnings.push(...compiler.problems.warnings);
  return { table: await compiler.build(hash, prints), problems };
}

/** Stable sort by the rule a problem points into (`/rules/N...`). */
function inRuleOrder(problems: ManifestProblem[]): void {
  const rule = (p: ManifestProblem) => Number(/^\/rules\/(\d+)/.exec(p.pointer)?.[1] ?? -1);
  problems.sort((a, b) => rule(a) - rule(b));
}

/**
 * SHA-256 of the manifest, fed in 1 MB pieces with yields between them.
 * The file's bytes hash to the same as their text (UTF-8), without making
 * the text: a reload that finds the same content never decodes it.
 */
export async function hashInSlices(data: string | Buffer): Promise<string> {
  const hash = createHash('sha256');
  for (let i = 0; i < data.length; i += 1 << 20) {
    hash.update(typeof data === 'string' ? data.slice(i, i + (1 << 20)) : data.subarray(i, i + (1 << 20)));
    if (i > 0) await yieldToEventLoop();
  }
  return hash.digest('hex');
}

export async function loadManifestFile(file: string): Promise<LoadResult> {
  const bytes = await readManifest(file);
  if (!Buffer.isBuffer(bytes)) {
    const problems = new ProblemSink();
    problems.error('', bytes.message);
    return { table: null, problems, text: null };
  }
  return loadManifestText(bytes.toString('utf8'), await hashInSlices(bytes));
}

/**
 * The file's bytes, or the reason it cannot be read. A regular file is read
 * with one read, off the event loop (node's readFile reads 512 KB at a time,
 * each piece waiting for a turn of a busy event loop); anything else (a
 * pipe, `<(...)`) to its end.
 */
export async function readManifest(file: string): Promise<Buffer | { code: string; message: string }> {
  let handle: FileHandle | null = null;
  try {
    handle = await open(file);
    const stats = await handle.stat();
    if (!stats.isFile()) return await handle.readFile();
    const size = stats.size;
    const bytes = Buffer.allocUnsafe(size);
    let length = 0;
    while (length < size) {
      const { bytesRead } = await handle.read(bytes, length, size - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return bytes.subarray(0, length);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    return { code, message: `cannot read ${file}: ${code}` };
  } finally {
    await handle?.close();
  }
}
