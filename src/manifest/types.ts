/**
 * The manifest as JSON (SPEC §1, §4-§8), after schema validation.
 * Field names are the manifest's own (kebab-case), so Scarf manifests load
 * unchanged. `schema/manifest.schema.json` is the authority; these types
 * mirror it.
 */

interface RuleBase {
  readonly domain: string;
}

export interface DockerV1Rule extends RuleBase {
  readonly type: 'docker-v1';
  readonly 'package-id': string;
  readonly 'repository-name': string;
  readonly registry: string;
  readonly 'always-proxy'?: boolean;
}

export interface DockerV2Rule extends RuleBase {
  readonly type: 'docker-v2';
  readonly pattern: string;
  readonly 'rule-id': string;
  readonly registry: string;
  readonly 'always-proxy'?: boolean;
}

export interface FileV1Rule extends RuleBase {
  readonly type: 'file-v1';
  readonly 'package-id': string;
  readonly 'incoming-path': string;
  readonly 'outgoing-url'?: string | null;
}

export interface FileV2Rule extends RuleBase {
  readonly type: 'file-v2';
  readonly 'package-id'?: string;
  readonly 'rule-id'?: string;
  readonly 'incoming-path': string;
  readonly 'outgoing-url'?: string | null;
}

export interface CatchAllRule extends RuleBase {
  readonly type: 'catch-all-v1';
  readonly 'package-id': string;
  readonly 'redirect-target-domain'?: string | null;
}

export interface PythonHash {
  readonly type: string;
  readonly hash: string;
}

export interface PythonRule extends RuleBase {
  readonly type: 'python-v1';
  readonly 'package-id': string;
  readonly 'package-name': string;
  readonly 'file-name': string;
  readonly version: string;
  readonly 'backend-url': string;
  readonly 'hash-value'?: PythonHash | null;
  readonly 'gpg-sig'?: boolean | null;
  readonly 'requires-python'?: string | null;
  readonly 'backend-simple-index-url'?: string | null;
  readonly 'backend-simple-index'?: string | null;
  readonly yanked?: boolean | string | null;
  readonly size?: number | null;
  readonly 'upload-time'?: string | null;
  readonly 'core-metadata'?: PythonHash | boolean | null;
}

export interface TelemetryRule extends RuleBase {
  readonly type: 'telemetry-v1';
  readonly 'package-id': string;
  readonly 'incoming-path': string;
  readonly 'access-tokens'?: readonly string[] | null;
}

export interface PixelRule extends RuleBase {
  readonly type: 'pixel-v1';
  readonly 'package-id': string;
  readonly path?: string;
}

export interface NpmRule extends RuleBase {
  readonly type: 'npm-v1';
  readonly 'package-id': string;
  readonly 'package-name': string;
  readonly registry?: string;
}

export type ManifestRule =
  | DockerV1Rule
  | DockerV2Rule
  | FileV1Rule
  | FileV2Rule
  | CatchAllRule
  | PythonRule
  | TelemetryRule
  | PixelRule
  | NpmRule;

export type RuleType = ManifestRule['type'];

export interface Manifest {
  readonly rules: readonly ManifestRule[];
}
