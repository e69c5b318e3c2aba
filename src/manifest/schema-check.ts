/**
 * JSON Schema validation of a manifest (ajv, JSON Schema 2020-12), with
 * ajv's errors turned into `<json-pointer>: <message>` problems.
 * The validator is compiled once per process.
 */
import { readFileSync } from 'node:fs';
import { domainToASCII } from 'node:url';
import { Ajv2020, type ErrorObject } from 'ajv/dist/2020.js';
import type { ProblemSink } from './problems.ts';
import { pointerToken } from '../errors.ts';

const SCHEMA_URL = new URL('../../schema/manifest.schema.json', import.meta.url);

/** The manifest schema, as loaded from `schema/manifest.schema.json`. */
export const MANIFEST_SCHEMA = JSON.parse(readFileSync(SCHEMA_URL, 'utf8')) as {
  properties: Record<string, unknown>;
  $defs: Record<string, { properties?: Record<string, unknown> }>;
};

// verbose: each error holds the value it is about (only failed checks make errors).
const ajv = new Ajv2020({ allErrors: true, strict: false, verbose: true });
ajv.addSchema(MANIFEST_SCHEMA, 'manifest');
/** The manifest's outer shape only: rules are checked one by one (checkRule). */
const validateShape = ajv.compile({
  ...MANIFEST_SCHEMA,
  $id: 'manifest-shape',
  properties: { ...MANIFEST_SCHEMA.properties, rules: { type: 'array', items: { type: 'object' } } },
});
const validateRule = ajv.getSchema('manifest#/$defs/rule')!;
/**
 * The rule schema is a list of "if type is X then $defs/X" branches; with
 * every error collected, each branch that does not apply allocates its
 * errors (≈ 1 KB per rule). A rule is checked against its own type's
 * definition and the domain's first; only when that fails does the whole
 * rule schema run, for the same problems as before.
 */
const RULE_TYPES = (MANIFEST_SCHEMA.$defs.rule.properties as { type: { enum: string[] } }).type.enum;
const validateByType = new Map(RULE_TYPES.map((type) => [type, ajv.getSchema(`manifest#/$defs/${type}`)!]));
const validateDomain = ajv.getSchema('manifest#/$defs/domain')!;

function validRule(rule: unknown): boolean {
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) return false;
  const { type, domain } = rule as Record<string, unknown>;
  const byType = typeof type === 'string' ? validateByType.get(type) : undefined;
  return byType !== undefined && validateDomain(domain) && byType(rule);
}

/** Fields Scarf manifests carry that this gateway does not use (no warning). */
const SCARF_FIELDS = ['type', 'domain', 'owner', 'package-name', '$comment'];

/** For an international domain name, its ASCII form (punycode), which clients send as Host. */
function asciiHint(domain: unknown): string {
  if (typeof domain !== 'string' || /^[\x00-\x7f]*$/.test(domain)) return '';
  const ascii = domainToASCII(domain);
  return ascii === '' ? '' : `; an international name is written in its ASCII form, here "${ascii}"`;
}

function message(e: ErrorObject): string {
  switch (e.keyword) {
    case 'required':
      return `missing required field "${(e.params as { missingProperty: string }).missingProperty}"`;
    case 'enum':
      return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern': {
      if (e.instancePath.endsWith('/domain')) return `must be a host name (letters, digits, "-" and "."), without a port${asciiHint(e.data)}`;
      // The field's own description says what it takes, better than its pattern.
      const description = (e.parentSchema as { description?: string } | undefined)?.description;
      return description === undefined ? `must match the pattern ${(e.params as { pattern: string }).pattern}` : `got ${JSON.stringify(e.data)}; expected: ${description}`;
    }
    case 'oneOf':
      return 'has the wrong shape (see the schema)';
    default:
      return e.message ?? 'is invalid';
  }
}

function report(errors: readonly ErrorObject[] | null | undefined, prefix: string, problems: ProblemSink): void {
  const seen = new Set<string>();
  for (const e of errors ?? []) {
    // "must match then schema" repeats the errors already reported inside it.
    if (e.keyword === 'if') continue;
    const pointer = prefix + e.instancePath;
    const text = message({ ...e, instancePath: pointer });
    const line = `${pointer}\u0000${text}`;
    if (seen.has(line)) continue;
    seen.add(line);
    problems.error(pointer, text);
  }
}

/** Checks the outer shape (`{"rules": [objects]}`); false when it is unusable. */
export function checkShape(manifest: unknown, problems: ProblemSink): manifest is { rules: Record<string, unknown>[] } {
  if (validateShape(manifest)) return true;
  report(validateShape.errors, '', problems);
  return false;
}

/** Checks one rule against the schema; warns about fields it does not know. */
export function checkRule(rule: Record<string, unknown>, index: number, problems: ProblemSink): boolean {
  const at = `/rules/${index}`;
  if (!validRule(rule) && !validateRule(rule)) {
    report(validateRule.errors, at, problems);
    return false;
  }
  const def = MANIFEST_SCHEMA.$defs[String(rule.type)];
  for (const field of Object.keys(rule)) {
    if (def?.properties?.[field] === undefined && !SCARF_FIELDS.includes(field)) {
      problems.warn(`${at}/${pointerToken(field)}`, 'unknown field, ignored');
    }
  }
  return true;
}
