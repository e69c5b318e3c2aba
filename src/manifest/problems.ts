/**
 * Collects manifest problems during validation and compilation. Errors make
 * a manifest unusable; warnings (unknown fields, shadowed rules) are printed
 * by `validate` and logged at load, but do not reject it.
 */
import type { ManifestProblem } from '../errors.ts';

export class ProblemSink {
  readonly errors: ManifestProblem[] = [];
  readonly warnings: ManifestProblem[] = [];

  error(pointer: string, message: string): void {
    this.errors.push({ pointer, message });
  }

  warn(pointer: string, message: string): void {
    this.warnings.push({ pointer, message });
  }
}
