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
import type { ManifestSource, RoutingTable } from '../routing/routing-table.ts';
import { ProblemSink } from './problems.ts';
import { createHash } from 'node:crypto';
import type { ManifestProblem } from '../errors.ts';
import { checkShape } from './schema-check.ts';
import { sliceRules } from './manifest-slices.ts';

export interface LoadResult {
  readonly table: RoutingTable | null;
  readonly problems: ProblemSink;
  /** The file's text, or null when it could not be read. */
  readonly text: string | null;
  /**
   * The text is not valid JSON because it ends too soon (or is empty): most
   * likely a copy of a file read while it was being written.
   */
  readonly cutOff?: boolean;
}

/**
 * Parse, check and compile manifest text (start-up, reloads, validate), in
 * slices, so that a large manifest never stalls the requests being served.
 * With the table of the previous manifest (reloads), domains whose rules
 * did not change are taken over from it instead of compiled again.
 */
export async function loadManifestText(text: string, knownHash?: string, previous: RoutingTable | null = null): Promise<LoadResult> {
  const hash = knownHash ?? (await hashInSlices(text));
  // A byte order mark (Windows editors save one) is ignored, as RFC 8259 §8.1 allows.
  const json = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  const sliced = await compileInSlices(json, hash, previous);
  if (sliced !== null) return { ...sliced, text };
  // Not the expected shape: one plain parse gives the real error.
  const problems = new ProblemSink();
  const syntax = await syntaxError(json);
  if (syntax !== null) {
    problems.error('', `not valid JSON: ${syntax}`);
    return { table: null, problems, text, cutOff: endsTooSoon(json, syntax) };
  }
  // Valid JSON of another shape (rare): its problems come from the schema.
  const manifest: unknown = JSON.parse(json);
  if (!checkShape(manifest, problems)) return { table: null, problems, text };
  const { table } = await compileManifest(manifest, hash, problems);
  return { table, problems, text };
}

/** Whether JSON.parse's `message` for `text` says that the text ended before its JSON did. */
function endsTooSoon(text: string, message: string): boolean {
  if (message.startsWith('Unexpected end of JSON input')) return true;
  const at = / at position (\d+)/.exec(message);
  return at !== null && Number(at[1]) >= text.trimEnd().length;
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
 * A changed rule's domain, guessed from its text instead of parsed: the
 * first `"domain": "..."` without escapes. The guess only sorts the rule
 * into a group; when the group is compiled each rule is parsed, and a rule
 * whose domain is not its group's starts the compile again without
 * guessing. Parsing each changed rule once instead of twice saved 7 % of
 * a reload of 100,000 changed rules (0.95 to 0.89 s of main-thread CPU,
 * alone, medians of 24 reloads in alternated runs).
 */
const DOMAIN_FIELD = /"domain"\s*:\s*"([^"\\]*)"/;

/** The rule's domain as requests see it; null when it has none usable (the schema check reports it). */
function domainOf(rule: unknown): string | null {
  const raw = typeof rule === 'object' && rule !== null ? (rule as { domain?: unknown }).domain : undefined;
  return typeof raw === 'string' ? normalizeDomain(raw) : null;
}

/**
 * Parse and compile the rules slice by slice; null when the text is not
 * shaped as expected.
 *
 * A first pass finds each rule's domain. On a reload, a rule whose text is
 * that of the previous manifest's rule at the same index is not parsed: its
 * domain is the one it had. A rule that differs (or that the manifest lost)
 * changes its domain and the domain that rule had before.
 *
 * The second pass compiles domain by domain, and parses each rule of a
 * changed domain there: a domain's index is then built while it is in the
 * cache, which saves more than a second parse costs. A reload of 100,000
 * changed rules over 1,000 domains took 1.11 s compiled in manifest order
 * with one parse, 0.94 s domain by domain with two and a SHA-256 of every
 * rule besides (alone, medians of 15 reloads in alternated runs). The
 * first pass does not parse a changed rule unless its domain cannot be
 * guessed (DOMAIN_FIELD; `guess` false: never guess). A domain none of
 * whose rules changed is taken over from the previous table.
 */
async function compileInSlices(text: string, hash: string, previous: RoutingTable | null, guess = true): Promise<Omit<LoadResult, 'text'> | null> {
  const slices = sliceRules(text);
  if (slices === null) return null;
  const before = previous?.source ?? null;
  const count = before?.domains.length ?? 0;
  const slicer = new TimeSlicer();
  const source = { text, starts: [] as number[], ends: [] as number[], domains: [] as (string | null)[] };
  /** Each domain's rules (indices), in order; null: rules without a usable domain. */
  const groups = new Map<string | null, { domain: string | null; indices: number[] }>();
  const changed = new Set<string | null>([null]);
  let index = 0;
  let more: boolean | null;
  while ((more = slices.advance()) === true) {
    const { start, end } = slices;
    let domain: string | null;
    if (index < count && sameText(before!, index, text, start, end)) {
      domain = before!.domains[index];
    } else {
      const json = text.slice(start, end);
      const guessed = guess ? DOMAIN_FIELD.exec(json) : null;
      if (guessed !== null) domain = normalizeDomain(guessed[1]);
      else {
        try {
          domain = domainOf(JSON.parse(json));
        } catch {
          // Malformed (a file read while it was being written, often): nothing more to compile.
          return null;
        }
      }
      if (index < count) changed.add(before!.domains[index]);
      changed.add(domain);
    }
    let group = groups.get(domain);
    if (group === undefined) groups.set(domain, (group = { domain, indices: [] }));
    group.indices.push(index);
    source.starts.push(start);
    source.ends.push(end);
    // The group's string, so that the source holds each domain once.
    source.domains.push(group.domain);
    index++;
    if ((index & 15) === 0 && slicer.due()) await slicer.yield();
  }
  if (more === null) return null;
  for (let i = index; i < count; i++) changed.add(before!.domains[i]);
  const compiler = new ManifestCompiler();
  for (const [domain, { indices }] of groups) {
    const prior = changed.has(domain) ? undefined : previous!.compiled.get(domain!);
    if (prior !== undefined) {
      compiler.reuse(domain!, prior);
      continue;
    }
    for (const i of indices) {
      let rule: Record<string, unknown>;
      try {
        rule = JSON.parse(text.slice(source.starts[i], source.ends[i])) as Record<string, unknown>;
      } catch {
        return null;
      }
      // A wrong guess (a "domain" inside another field, written twice...): start again, parsing every rule to group it.
      if (domainOf(rule) !== domain) return compileInSlices(text, hash, null, false);
      compiler.add(rule, i);
      if (slicer.due()) await slicer.yield();
    }
  }
  // Domain by domain, problems come out of order: back in manifest order, as one pass over the rules gives them.
  inRuleOrder(compiler.problems.errors);
  inRuleOrder(compiler.problems.warnings);
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
  return { table: await compiler.build(hash, Object.freeze(source)), problems };
}

/** Whether `text.slice(start, end)` is the previous manifest's rule `index`, character for character. */
function sameText(before: ManifestSource, index: number, text: string, start: number, end: number): boolean {
  const from = before.starts[index];
  const to = before.ends[index];
  return to - from === end - start && before.text.slice(from, to) === text.slice(start, end);
}

/** Stable sort by the rule a problem points into (`/rules/N...`); each pointer is read once. */
function inRuleOrder(problems: ManifestProblem[]): void {
  const keyed = problems.map((problem) => ({ problem, rule: Number(/^\/rules\/(\d+)/.exec(problem.pointer)?.[1] ?? -1) }));
  keyed.sort((a, b) => a.rule - b.rule);
  keyed.forEach(({ problem }, k) => (problems[k] = problem));
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
