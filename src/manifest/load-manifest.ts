/**
 * Manifest file → routing table: read, parse, check against the schema,
 * compile. Problems come back with JSON pointers; nothing here throws for a
 * bad manifest, so callers decide (exit at start-up, keep the old table on
 * reload).
 */
import { readFile } from 'node:fs/promises';
import { compileManifest } from '../routing/compile.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import type { Manifest } from './types.ts';
import { ProblemSink } from './problems.ts';
import { checkSchema } from './schema-check.ts';

export interface LoadResult {
  readonly table: RoutingTable | null;
  readonly problems: ProblemSink;
  /** The file's text, or null when it could not be read. */
  readonly text: string | null;
}

/** Parse and compile manifest text (also used for reloads and tests). */
export function loadManifestText(text: string): LoadResult {
  const problems = new ProblemSink();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    problems.error('', `not valid JSON: ${(e as Error).message}`);
    return { table: null, problems, text };
  }
  const invalidRules = checkSchema(json, problems);
  if (invalidRules === null) return { table: null, problems, text };
  // The semantic pass still checks every rule the schema accepted, so that
  // one run reports every problem.
  const { table } = compileManifest(json as Manifest, text, problems, invalidRules);
  return { table, problems, text };
}

export async function loadManifestFile(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const problems = new ProblemSink();
    problems.error('', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return { table: null, problems, text: null };
  }
  return loadManifestText(text);
}
