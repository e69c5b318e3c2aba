/**
 * GATEWAY_* environment variables (SPEC §10: `--admin-port` ←
 * GATEWAY_ADMIN_PORT), for systemd's `EnvironmentFile=` and containers.
 * They are read here as the defaults of the serve command's flags, not by
 * yargs's `.env()`, which read them for every command and as arguments:
 *
 * - `validate` read them too, and refused any as an unknown argument
 *   (`Unknown argument: port` wherever GATEWAY_PORT was set);
 * - a GATEWAY_* variable that names no flag stopped the start. Kubernetes
 *   sets GATEWAY_SERVICE_HOST, GATEWAY_PORT_80_TCP and others in every pod
 *   of a namespace that has a Service named `gateway`. They are now
 *   ignored, and the gateway warns about them;
 * - a repeatable flag got its variable as one value, so
 *   `GATEWAY_UPSTREAM="a=URL b=URL"` was one upstream for `a`, with a URL
 *   holding a space.
 *
 * The command line still wins over a variable, and a variable over the
 * built-in default; an empty variable counts as not set.
 */
import type { Options } from 'yargs';

/**
 * How the variable of a repeatable flag separates its values: white space
 * (no address, URL or host name holds any; a file path that does must go
 * on the command line; --trust-proxy's values split at commas themselves,
 * as on the command line); for --redirect-agent only white space before a
 * kind, since a user agent holds spaces (`equals:Watchtower (Docker)`).
 */
const LIST_SEPARATORS: Readonly<Record<string, RegExp>> = {
  'redirect-agent': /\s+(?=(?:prefix|contains|equals):)/,
};

/** Words systemd takes for a boolean setting. */
const BOOLEANS: Readonly<Record<string, boolean>> = { true: true, yes: true, on: true, '1': true, false: false, no: false, off: false, '0': false };

/** `--flag`'s variable: `GATEWAY_` and the flag in upper case, `_` for `-`. */
const envName = (flag: string): string => `GATEWAY_${flag.toUpperCase().replaceAll('-', '_')}`;

export interface EnvironmentOptions<T> {
  /** `options`, each flag whose variable is set defaulting to its value. */
  readonly options: T;
  /** Flag → the variable its default came from (`NAME="text"`) and that default, for messages about a bad value. */
  readonly sources: ReadonlyMap<string, { readonly variable: string; readonly value: unknown }>;
  /** GATEWAY_* variables that name no flag. */
  readonly unused: readonly string[];
  /** Variables whose text is not a value of their flag (a boolean that is not a boolean word, a level pino does not have). */
  readonly problems: readonly string[];
}

export function withEnvironment<T extends Record<string, Options>>(options: T, env: NodeJS.ProcessEnv): EnvironmentOptions<T> {
  const flags = new Map(Object.keys(options).map((flag) => [envName(flag), flag]));
  const result: Record<string, Options> = { ...options };
  const sources = new Map<string, { variable: string; value: unknown }>();
  const unused: string[] = [];
  const problems: string[] = [];
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith('GATEWAY_') || text === undefined) continue;
    const flag = flags.get(name);
    if (flag === undefined) {
      unused.push(name);
      continue;
    }
    // `NAME=` in an EnvironmentFile, or `-e NAME=`, is how a setting is left out.
    if (text.trim() === '') continue;
    const option = options[flag];
    const value = fromText(flag, option.type, text);
    if (value === undefined) problems.push(`${name}="${text}": expected true or false (also yes/no, on/off, 1/0) for --${flag}`);
    else if (option.choices !== undefined && !option.choices.includes(value as string)) {
      // yargs would say only `Argument: log-level, Given: "loud"`, which the command line does not hold.
      problems.push(`${name}="${text}": expected one of ${option.choices.join(', ')} for --${flag}`);
    } else {
      result[flag] = { ...option, default: value };
      sources.set(flag, { variable: `${name}="${text}"`, value });
    }
  }
  return { options: result as T, sources, unused: unused.sort(), problems };
}

/** A variable's text as a value of the flag's type: undefined for a boolean word it does not know (numbers are checked with the command line's). */
function fromText(flag: string, type: Options['type'], text: string): unknown {
  if (type === 'number') return Number(text);
  if (type === 'boolean') return BOOLEANS[text.trim().toLowerCase()];
  if (type === 'array') return text.trim().split(LIST_SEPARATORS[flag] ?? /\s+/).filter((value) => value !== '');
  return text;
}
