/**
 * The compiled, frozen routing table: one index per domain (SPEC §3).
 * A new manifest builds a new table; the server swaps it in with one
 * assignment, and requests in flight keep the table they started with.
 */
import type { FileIndex } from './file-index.ts';
import type { CompiledFileV1 } from '../rules/file-v1.ts';
import type { CompiledFileV2 } from '../rules/file-v2.ts';
import type { CompiledCatchAll } from '../rules/catch-all.ts';
import type { CompiledTelemetry } from '../rules/telemetry.ts';
import type { CompiledPixel } from '../rules/pixel.ts';
import type { DockerIndex } from '../rules/docker.ts';
import type { PythonIndex } from '../rules/python.ts';
import type { NpmIndex } from '../rules/npm.ts';
import type { RuleType } from '../manifest/types.ts';
import type { ManifestProblem } from '../errors.ts';

/** Everything one domain answers, by rule kind, in precedence order. */
export interface DomainTable {
  readonly docker: DockerIndex | null;
  readonly pixels: ReadonlyMap<string, CompiledPixel> | null;
  readonly telemetry: ReadonlyMap<string, CompiledTelemetry> | null;
  readonly fileV1: FileIndex<CompiledFileV1> | null;
  readonly fileV2: readonly CompiledFileV2[] | null;
  readonly python: PythonIndex | null;
  readonly npm: NpmIndex | null;
  readonly catchAll: CompiledCatchAll | null;
}

/** A domain as compiled, with what a later compile needs to take it over unchanged. */
export interface CompiledDomain {
  readonly table: DomainTable;
  readonly counts: Readonly<Partial<Record<RuleType, number>>>;
  /** Warnings its rules gave (pointers into the manifest it was compiled from). */
  readonly warnings: readonly ManifestProblem[];
}

export interface RoutingTable {
  readonly domains: ReadonlyMap<string, DomainTable>;
  /** The same domains, as compiled (for the next reload). */
  readonly compiled: ReadonlyMap<string, CompiledDomain>;
  /** Rules loaded, per kind (for /metrics and the start-up log). */
  readonly counts: Readonly<Partial<Record<RuleType, number>>>;
  /** SHA-256 of the manifest text this table was compiled from. */
  readonly hash: string;
  /** When the table was compiled (ms since the epoch). */
  readonly loadedAt: number;
  /** The rules it was compiled from, for the next reload to compare (null: that reload compiles everything). */
  readonly source: ManifestSource | null;
}

/**
 * Each rule of the manifest as written: its JSON text and its domain. A
 * reload compares each rule's text with the text at the same index here;
 * a domain whose rules all compare equal is taken over. Holding the text
 * costs its size in memory (22 MB for the bench's 100,000 rules); comparing it
 * is cheaper than hashing every rule on each reload, and exact.
 */
export interface ManifestSource {
  readonly text: string;
  /** Rule i's text is `text.slice(starts[i], ends[i])`. */
  readonly starts: readonly number[];
  readonly ends: readonly number[];
  /** Rule i's domain, normalized; null when it has none usable. */
  readonly domains: readonly (string | null)[];
}
