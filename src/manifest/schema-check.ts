/**
 * JSON Schema validation of a manifest (ajv, JSON Schema 2020-12), with
 * ajv's errors turned into `<json-pointer>: <message>` problems.
 * The validator is compiled once per process.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import type { ProblemSink } from './problems.ts';
import { pointerToken } from '../errors.ts';

const SCHEMA_URL = new URL('../../schema/manifest.schema.json', import.meta.url);

/** The manifest schema, as loaded from `schema/manifest.schema.json`. */
export const MANIFEST_SCHEMA = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as {
  $defs: Record<string, { properties?: Record<string, unknown> }>;
};

const ajv = new Ajv2020({ allErrors: true, strict: false });
const validate = ajv.compile(MANIFEST_SCHEMA);

/** Fields Scarf manifests carry that this gateway does not use (no warning). */
const SCARF_FIELDS = ['type', 'domain', 'owner', 'package-name', '$comment'];

function message(e: ErrorObject): string {
  switch (e.keyword) {
    case 'required':
      return `missing required field "${(e.params as { missingProperty: string }).missingProperty}"`;
    case 'enum':
      return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      if (e.instancePath.endsWith('/domain')) return 'must be a host name (letters, digits, "-" and "."), without a port';
      return `must match the pattern ${(e.params as { pattern: string }).pattern}`;
    case 'oneOf':
      return 'has the wrong shape (see the schema)';
    default:
      return e.message ?? 'is invalid';
  }
}

/**
 * Adds one problem per schema violation. Returns the indices of the rules
 * that violate the schema (so the semantic pass can still check the others),
 * or null when the manifest as a whole is unusable (not an object with rules).
 */
export function checkSchema(manifest: unknown, problems: ProblemSink): Set<number> | null {
  const bad = new Set<number>();
  if (validate(manifest)) {
    warnUnknownFields(manifest as { rules: Record<string, unknown>[] }, problems);
    return bad;
  }
  let usable = true;
  const seen = new Set<string>();
  for (const e of validate.errors ?? []) {
    // "must match then schema" repeats the errors already reported inside it.
    if (e.keyword === 'if') continue;
    const line = `${e.instancePath}\u0000${message(e)}`;
    if (seen.has(line)) continue;
    seen.add(line);
    problems.error(e.instancePath, message(e));
    const rule = /^\/rules\/(\d+)(?:\/|$)/.exec(e.instancePath);
    if (rule === null) usable = false;
    else bad.add(Number(rule[1]));
  }
  return usable ? bad : null;
}

function warnUnknownFields(manifest: { rules: Record<string, unknown>[] }, problems: ProblemSink): void {
  manifest.rules.forEach((rule, i) => {
    const def = MANIFEST_SCHEMA.$defs[String(rule.type)];
    const known = new Set([...Object.keys(def?.properties ?? {}), ...SCARF_FIELDS]);
    for (const field of Object.keys(rule)) {
      if (!known.has(field)) problems.warn(`/rules/${i}/${pointerToken(field)}`, 'unknown field, ignored');
    }
  });
}
