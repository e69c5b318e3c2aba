/**
 * Manifest → routing table (SPEC §3). This is also the semantic half of
 * validation: every template is parsed, every regex compiled and every
 * outgoing variable checked here, once, when the manifest is loaded.
 */
import { pointerToken, type ManifestProblem } from '../errors.ts';
import type { ManifestRule, PythonRule, RuleType } from '../manifest/types.ts';
import { checkRule } from '../manifest/schema-check.ts';
import { checkPythonRule, compilePythonIndex, normalizeProject } from '../rules/python.ts';
import { compileNpm, type NpmTarget } from '../rules/npm.ts';
import { ProblemSink } from '../manifest/problems.ts';
import { FileIndexBuilder } from './file-index.ts';
import { InternPool } from './intern-pool.ts';
import { compileFileV1, type CompiledFileV1 } from '../rules/file-v1.ts';
import { compileFileV2, type CompiledFileV2 } from '../rules/file-v2.ts';
import { compileCatchAll, type CompiledCatchAll } from '../rules/catch-all.ts';
import { compileTelemetry, type CompiledTelemetry } from '../rules/telemetry.ts';
import { compilePixel, type CompiledPixel } from '../rules/pixel.ts';
import type { CompiledDomain, DomainTable, ManifestSource, RoutingTable } from './routing-table.ts';
import { compileDockerV1, compileDockerV2, type DockerIndex, type DockerTarget } from '../rules/docker.ts';

/** Normalizes a domain as request hosts are (SPEC §2): lower case, no trailing dot. */
export function normalizeDomain(domain: string): string {
  const d = domain.toLowerCase();
  return d.endsWith('.') ? d.slice(0, -1) : d;
}

/** Mutable per-domain state while compiling. */
class DomainBuilder {
  readonly pixels = new Map<string, CompiledPixel>();
  readonly telemetry = new Map<string, CompiledTelemetry>();
  readonly pool: InternPool;
  readonly fileV1: FileIndexBuilder<CompiledFileV1>;
  readonly fileV2: CompiledFileV2[] = [];
  catchAll: CompiledCatchAll | null = null;
  readonly dockerByName = new Map<string, DockerTarget>();
  readonly dockerPatterns: { regex: RegExp; target: DockerTarget }[] = [];
  dockerFirst: DockerTarget | null = null;
  readonly python: PythonRule[] = [];
  readonly npm = new Map<string, NpmTarget>();
  /** For a later compile: the domain's counts and warnings. */
  readonly counts: Partial<Record<RuleType, number>> = {};
  readonly warnings: ManifestProblem[] = [];
  constructor(pool: InternPool) {
    this.pool = pool;
    this.fileV1 = new FileIndexBuilder<CompiledFileV1>(pool);
  }

  /** Pointer of the first rule that claimed each exact key, to report shadowed rules. */
  readonly claimed = new Map<string, string>();

  claim(key: string, at: string, problems: ProblemSink): boolean {
    const first = this.claimed.get(key);
    if (first !== undefined) {
      problems.warn(at, `never used: ${first} on the same domain answers first`);
      return false;
    }
    this.claimed.set(key, at);
    return true;
  }

  /** Pointer of each file-v1 rule in the trie, to name it when it shadows a later one. */
  readonly fileV1At = new Map<CompiledFileV1, string>();

  build(): CompiledDomain {
    return Object.freeze({ table: this.#table(), counts: Object.freeze(this.counts), warnings: Object.freeze(this.warnings) });
  }

  #table(): DomainTable {
    const fileV1 = this.fileV1.build();
    const docker: DockerIndex | null =
      this.dockerFirst === null
        ? null
        : Object.freeze({ byName: this.dockerByName, patterns: Object.freeze(this.dockerPatterns), first: this.dockerFirst });
    return Object.freeze({
      docker,
      pixels: this.pixels.size > 0 ? this.pixels : null,
      telemetry: this.telemetry.size > 0 ? this.telemetry : null,
      fileV1: fileV1.size > 0 ? fileV1 : null,
      fileV2: this.fileV2.length > 0 ? Object.freeze(this.fileV2) : null,
      python: this.python.length > 0 ? compilePythonIndex(this.python) : null,
      npm: this.npm.size > 0 ? Object.freeze({ byName: this.npm }) : null,
      catchAll: this.catchAll,
    });
  }
}

export interface CompileResult {
  readonly table: RoutingTable | null;
  readonly problems: ProblemSink;
}

/**
 * Milliseconds of loading work between two yields to the event loop: a
 * request that arrives meanwhile waits at most about this long.
 */
const SLICE_MS = 2;

/**
 * Checks and compiles rules one at a time, as they are parsed, so that a
 * large manifest's parsed rules never all exist at once: each one is
 * garbage as soon as it is compiled. Every rule the schema accepts is also
 * checked semantically, so one run reports every problem.
 *
 * A domain whose rules are exactly those of a previous compile (same text,
 * same place in the manifest) can be taken over whole with `reuse`.
 */
export class ManifestCompiler {
  readonly problems: ProblemSink;
  readonly #domains = new Map<string, DomainBuilder>();
  readonly #reused = new Map<string, CompiledDomain>();
  readonly #pool = new InternPool();

  constructor(problems = new ProblemSink()) {
    this.problems = problems;
  }

  /** Rule number `index` of the manifest. */
  add(raw: Record<string, unknown>, index: number): void {
    const warned = this.problems.warnings.length;
    if (!checkRule(raw, index, this.problems)) return;
    const rule = raw as unknown as ManifestRule;
    const domain = normalizeDomain(rule.domain);
    let d = this.#domains.get(domain);
    if (d === undefined) this.#domains.set(domain, (d = new DomainBuilder(this.#pool)));
    d.counts[rule.type] = (d.counts[rule.type] ?? 0) + 1;
    addRule(d, rule, `/rules/${pointerToken(index)}`, this.problems);
    if (this.problems.warnings.length > warned) d.warnings.push(...this.problems.warnings.slice(warned));
  }

  /** Takes over a domain compiled before (its rules have not changed); its warnings are reported again. */
  reuse(domain: string, compiled: CompiledDomain): void {
    this.#reused.set(domain, compiled);
    this.problems.warnings.push(...compiled.warnings);
  }

  /**
   * The routing table, or null when a rule had an error. `hash` is the
   * SHA-256 of the manifest's text (for /metrics and reload dedup);
   * `source` is kept for the next reload (without it, that reload compiles
   * every domain).
   */
  async build(hash: string, source: ManifestSource | null = null): Promise<RoutingTable | null> {
    if (this.problems.errors.length > 0) return null;
    const compiled = new Map(this.#reused);
    const slicer = new TimeSlicer();
    for (const [name, d] of this.#domains) {
      if (slicer.due()) await slicer.yield();
      compiled.set(name, d.build());
    }
    const domains = new Map<string, DomainTable>();
    const counts: Partial<Record<RuleType, number>> = {};
    for (const [name, c] of compiled) {
      domains.set(name, c.table);
      for (const [type, n] of Object.entries(c.counts) as [RuleType, number][]) counts[type] = (counts[type] ?? 0) + n;
    }
    return Object.freeze({ domains, compiled, counts: Object.freeze(counts), hash, loadedAt: Date.now(), source });
  }
}

/**
 * Check and compile a parsed manifest, cut into slices with a yield to the
 * event loop between them, so that compiling 100,000 rules never stalls the
 * requests being served.
 */
export async function compileManifest(manifest: { rules: Record<string, unknown>[] }, hash: string, problems = new ProblemSink()): Promise<CompileResult> {
  const compiler = new ManifestCompiler(problems);
  const slicer = new TimeSlicer();
  for (let index = 0; index < manifest.rules.length; index++) {
    if (slicer.due()) await slicer.yield();
    compiler.add(manifest.rules[index], index);
  }
  return { table: await compiler.build(hash), problems };
}

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Cuts long work into slices of SLICE_MS: `if (slicer.due()) await slicer.yield()` between pieces. */
export class TimeSlicer {
  #deadline = performance.now() + SLICE_MS;

  due(): boolean {
    return performance.now() >= this.#deadline;
  }

  async yield(): Promise<void> {
    await yieldToEventLoop();
    this.#deadline = performance.now() + SLICE_MS;
  }
}

function addRule(d: DomainBuilder, rule: ManifestRule, at: string, problems: ProblemSink): void {
  switch (rule.type) {
    case 'file-v1': {
      const result = compileFileV1(rule, at, problems, d.pool);
      if (result === null) return;
      const { compiled, incoming } = result;
      const first = d.fileV1.add(incoming, compiled);
      if (first === null) d.fileV1At.set(compiled, at);
      else problems.warn(at, `never used: ${d.fileV1At.get(first)} on the same domain answers first`);
      return;
    }
    case 'docker-v1': {
      const t = compileDockerV1(rule, at, problems);
      d.dockerFirst ??= t;
      if (d.claim(`docker ${rule['repository-name']}`, at, problems)) d.dockerByName.set(rule['repository-name'], t);
      return;
    }
    case 'docker-v2': {
      const compiled = compileDockerV2(rule, at, problems);
      if (compiled === null) return;
      d.dockerFirst ??= compiled.target;
      d.dockerPatterns.push(compiled);
      return;
    }
    case 'python-v1': {
      checkPythonRule(rule, at, problems);
      const key = `python ${normalizeProject(rule['package-name'])} ${rule['file-name']}`;
      if (d.claim(key, at, problems)) d.python.push(rule);
      return;
    }
    case 'npm-v1': {
      const t = compileNpm(rule);
      if (d.claim(`npm ${t.name}`, at, problems)) d.npm.set(t.name, t);
      return;
    }
    case 'file-v2': {
      const compiled = compileFileV2(rule, at, problems);
      if (compiled !== null) d.fileV2.push(compiled);
      return;
    }
    case 'catch-all-v1':
      if (d.claim('catch-all', at, problems)) d.catchAll = compileCatchAll(rule);
      return;
    case 'telemetry-v1': {
      const compiled = compileTelemetry(rule, at, problems);
      if (d.claim(`telemetry ${rule['incoming-path']}`, at, problems)) d.telemetry.set(rule['incoming-path'], compiled);
      return;
    }
    case 'pixel-v1': {
      const compiled = compilePixel(rule);
      if (d.claim(`pixel ${compiled.path}`, at, problems)) d.pixels.set(compiled.path, compiled);
      return;
    }
  }
}
