/**
 * Manifest file → routing table: read, parse, check against the schema,
 * compile. Problems come back with JSON pointers; nothing here throws for a
 * bad manifest, so callers decide (exit at start-up, keep the old table on
 * reload).
 */
import { readFile } from 'node:fs/promises';
import { compileManifest } from '../routing/compile.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import { ProblemSink } from './problems.ts';
import { checkShape } from './schema-check.ts';

export interface LoadResult {
  readonly table: RoutingTable | null;
  readonly problems: ProblemSink;
  /** The file's text, or null when it could not be read. */
  readonly text: string | null;
}

/** Parse, check and compile manifest text (start-up, reloads, validate). */
export async function loadManifestText(text: string): Promise<LoadResult> {
  const problems = new ProblemSink();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    problems.error('', `not valid JSON: ${(e as Error).message}`);
    return { table: null, problems, text };
  }
  if (!checkShape(json, problems)) return { table: null, problems, text };
  const { table } = await compileManifest(json, text, problems);
  return { table, problems, text };
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
