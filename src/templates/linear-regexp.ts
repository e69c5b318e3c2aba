/**
 * Regular expressions that run in time linear in the input, whatever the
 * pattern: V8's experimental non-backtracking engine (the `l` flag). A
 * manifest regex, or a template with several adjacent variables, can then
 * never stall the server on a crafted path (SPEC §5, file-v2). Patterns the
 * engine cannot run in linear time (backreferences, lookaround) throw at
 * compile time, so they are rejected when the manifest is loaded.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--enable-experimental-regexp-engine');

/** Compile `source` for the linear-time engine; throws SyntaxError if it cannot be. */
export function linearRegExp(source: string, flags = ''): RegExp {
  return new RegExp(source, flags + 'l');
}
