/**
 * Capture shapes: the analytics facts a matched request produces
 * (SPEC §9). `schema/event.schema.json` describes them for consumers.
 */

export interface DockerCapture {
  readonly type: 'docker';
  readonly package: string | null;
  readonly rule: string | null;
  readonly image: string;
  readonly reference: string | null;
  readonly registry: string;
}

export interface FileCapture {
  readonly type: 'file';
  readonly package: string | null;
  readonly url: string | null;
  readonly variables: Readonly<Record<string, string>>;
  readonly body?: unknown;
}

export interface PythonCapture {
  readonly type: 'python';
  readonly package: string | null;
  readonly version: string | null;
  readonly file: string | null;
  readonly url: string | null;
}

export interface TelemetryCapture {
  readonly type: 'telemetry';
  readonly package: string;
  readonly event: unknown;
}

export interface PixelCapture {
  readonly type: 'pixel';
  readonly package: string;
  readonly pixel: string;
}

export interface NpmCapture {
  readonly type: 'npm';
  readonly package: string;
  readonly name: string;
  readonly version: string | null;
  readonly url: string | null;
}

export type Capture = DockerCapture | FileCapture | PythonCapture | TelemetryCapture | PixelCapture | NpmCapture;

/** How a request ended, one word per analytics line. */
export const OUTCOMES = [
  'redirect',
  'proxy',
  'respond',
  'not-modified',
  'not-found',
  'unauthorized',
  'rejected',
  'upstream-error',
] as const;

export type Outcome = (typeof OUTCOMES)[number];
