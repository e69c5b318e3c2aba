/**
 * Manifest file → routing table: read, parse, check against the schema,
 * compile. Problems come back with JSON pointers; nothing here throws for a
 * bad manifest, so callers decide (exit at start-up, keep the old table on
 * reload).
 */
import { readFile } from 'node:fs/promises';
import { compileManifest, ManifestCompiler, TimeSlicer, yieldToEventLoop } from '../routing/compile.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import { ProblemSink } from './problems.ts';
import { createHash } from 'node:crypto';
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
 * Each slice of rules is compiled as soon as it is parsed.
 */
export async function loadManifestText(text: string, knownHash?: string): Promise<LoadResult> {
  const hash = knownHash ?? (await hashInSlices(text));
  const sliced = await compileInSlices(text, hash);
  if (sliced !== null) return { ...sliced, text };
  // Not the expected shape: one plain parse gives the real error.
  const problems = new ProblemSink();
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (e) {
    problems.error('', `not valid JSON: ${(e as Error).message}`);
    return { table: null, problems, text };
  }
  if (!checkShape(manifest, problems)) return { table: null, problems, text };
  const { table } = await compileManifest(manifest, hash, problems);
  return { table, problems, text };
}

/** Parse and compile the rules slice by slice; null when the text is not shaped as expected. */
async function compileInSlices(text: string, hash: string): Promise<Omit<LoadResult, 'text'> | null> {
  const slices = sliceRules(text);
  if (slices === null) return null;
  const compiler = new ManifestCompiler();
  const slicer = new TimeSlicer();
  let index = 0;
  for (let batch = slices.next(BATCH); batch !== null && batch.length > 0; batch = slices.next(BATCH)) {
    for (const rule of batch) compiler.add(rule as Record<string, unknown>, index++);
    if (slicer.due()) await slicer.yield();
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
  return { table: await compiler.build(hash), problems };
}

/** SHA-256 of the text, fed in 1 MB pieces with yields between them. */
export async function hashInSlices(text: string): Promise<string> {
  const hash = createHash('sha256');
  for (let i = 0; i < text.length; i += 1 << 20) {
    hash.update(text.slice(i, i + (1 << 20)));
    if (i > 0) await yieldToEventLoop();
  }
  return hash.digest('hex');
}

export async function loadManifestFile(file: string): Promise<LoadResult> {
  const text = await readManifestText(file);
  if (typeof text !== 'string') {
    const problems = new ProblemSink();
    problems.error('', text.message);
    return { table: null, problems, text: null };
  }
  return loadManifestText(text);
}

/** The file's text, or the reason it cannot be read. */
export async function readManifestText(file: string): Promise<string | { code: string; message: string }> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    return { code, message: `cannot read ${file}: ${code}` };
  }
}
