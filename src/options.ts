import { DEFAULT_REDIRECT_AGENTS } from './proxy/user-agents.ts';

/**
 * Gateway options: one field per command-line flag (and GATEWAY_* variable),
 * each with its default. The CLI builds this object once; it is frozen.
 */

export interface GatewayOptions {
  /** Manifest file to serve and watch. */
  readonly manifest: string;
  /** Address of the public listener. */
  readonly host: string;
  /** Public port (0 picks a free one). */
  readonly port: number;
  /** Address of the admin listener (/healthz, /readyz, /metrics). */
  readonly adminHost: string;
  /** Admin port (0 picks a free one; -1 disables the admin listener). */
  readonly adminPort: number;
  /** Peers trusted to set X-Forwarded-*: addresses, CIDRs, `loopback`, `all` or `none`. */
  readonly trustProxy: readonly string[];
  /** Write client addresses truncated to IPv4 /24 and IPv6 /48. */
  readonly anonymizeIp: boolean;
  /** Backend host → base URL for proxied traffic (mirror, cache, test double). */
  readonly upstreams: ReadonlyMap<string, string>;
  /** Docker `config.json` whose `auths` the gateway uses to pull from backends, or null. */
  readonly registryAuth: string | null;
  /** User agents that get registry redirects: `prefix:`, `contains:` or `equals:` rules. */
  readonly redirectAgents: readonly string[];
  /** Time to connect to a backend, in ms. */
  readonly upstreamConnectTimeout: number;
  /** Time a backend may stay silent (first byte, and between chunks), in ms. */
  readonly upstreamTimeout: number;
  /** Time a write of a proxied body, an npm document or a large Python page may wait for the client, in ms; past it the response is cut off. */
  readonly sendTimeout: number;
  /** MiB of the proxy's read buffers that may each hold 256 KiB; past them, reads take 16 KiB. */
  readonly proxyBufferMemory: number;
  /** How long an npm package document is served from cache before revalidation, in ms. */
  readonly npmCacheTtl: number;
  /** MiB the cached npm package documents (their text and renderings) may hold, per process. */
  readonly npmCacheMemory: number;
  /** Where analytics lines go: `-` for stdout, or a file to append to. */
  readonly analytics: string;
  /** Largest request target (path and query), in bytes; longer gets 414. */
  readonly maxUrlLength: number;
  /** Largest request head (request line and headers), in bytes; larger gets 431. */
  readonly maxHeaderSize: number;
  /** Largest request body read for events, in bytes; larger gets 413. */
  readonly maxBodySize: number;
  /** Events kept from one request body. */
  readonly maxBodyEvents: number;
  /** Time allowed to receive the request head, in ms. */
  readonly headersTimeout: number;
  /** Time allowed to receive the whole request, in ms. */
  readonly requestTimeout: number;
  /** Idle keep-alive connections are closed after this many ms. */
  readonly keepAliveTimeout: number;
  /** On SIGTERM/SIGINT, in-flight requests get this many ms to finish. */
  readonly drainTimeout: number;
  /** On SIGTERM/SIGINT, ms the gateway goes on accepting and serving, not ready, before the drain (a load balancer's time to stop sending). */
  readonly stopDelay: number;
  /** Interval of the manifest's backup stat check, in ms. */
  readonly watchInterval: number;
  /** Quiet time after a file event before the manifest is read, in ms. */
  readonly watchDebounce: number;
  /** Worker processes (node:cluster); 1 runs everything in one process. */
  readonly workers: number;
  /** Level of the operational log on stderr. */
  readonly logLevel: string;
  /**
   * PEM certificate chains of the public listener and their keys
   * (`--tls-cert`/`--tls-key` pairs), which then speaks HTTPS: each serves
   * the names it lists (SNI), the first any other. Empty for plain HTTP.
   */
  readonly tls: readonly CertificateFiles[];
}

export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

export const DEFAULTS: Omit<GatewayOptions, 'manifest' | 'upstreams'> = {
  host: '127.0.0.1',
  port: 8081,
  adminHost: '127.0.0.1',
  adminPort: 8082,
  trustProxy: ['loopback'],
  anonymizeIp: false,
  registryAuth: null,
  redirectAgents: DEFAULT_REDIRECT_AGENTS,
  upstreamConnectTimeout: 10_000,
  upstreamTimeout: 60_000,
  sendTimeout: 60_000,
  proxyBufferMemory: 64,
  npmCacheTtl: 60_000,
  npmCacheMemory: 256,
  analytics: '-',
  maxUrlLength: 8192,
  maxHeaderSize: 16384,
  maxBodySize: 65536,
  maxBodyEvents: 100,
  headersTimeout: 10_000,
  requestTimeout: 30_000,
  keepAliveTimeout: 5_000,
  drainTimeout: 10_000,
  stopDelay: 0,
  watchInterval: 1000,
  watchDebounce: 50,
  workers: 1,
  logLevel: 'info',
  tls: [],
};

/** pino's levels, quietest last; another value is refused before the gateway starts. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

interface NumberRange {
  readonly min: number;
  readonly max: number;
  readonly integer?: boolean;
}

/** The longest a timer can wait (node fires a longer one after 1 ms), and the largest count a flag takes. */
const INT32_MAX = 2 ** 31 - 1;
const ms = (min: number): NumberRange => ({ min, max: INT32_MAX });
const count = (min: number): NumberRange => ({ min, max: INT32_MAX, integer: true });

/** The values each numeric flag takes; anything else is refused before the gateway starts. */
export const NUMBER_FLAGS: Readonly<Record<string, NumberRange>> = {
  port: { min: 0, max: 65535, integer: true },
  'admin-port': { min: -1, max: 65535, integer: true },
  'upstream-connect-timeout': ms(1),
  'upstream-timeout': ms(1),
  'send-timeout': ms(1),
  'proxy-buffer-memory': { min: 0, max: 2 ** 20 },
  'npm-cache-ttl': ms(0),
  'npm-cache-memory': { min: 1, max: 2 ** 20 },
  'max-url-length': count(1),
  'max-header-size': count(1),
  'max-body-size': count(0),
  'max-body-events': count(0),
  'headers-timeout': ms(0),
  'request-timeout': ms(0),
  'keep-alive-timeout': ms(0),
  'drain-timeout': ms(0),
  'stop-delay': ms(0),
  'watch-interval': ms(1),
  'watch-debounce': ms(0),
  workers: { min: 1, max: 1024, integer: true },
};

/** Why `value` is not a value of `--flag`, or null. */
export function numberProblem(flag: string, value: number): string | null {
  const range = NUMBER_FLAGS[flag];
  if (typeof value === 'number' && value >= range.min && value <= range.max && (range.integer !== true || Number.isInteger(value))) return null;
  return `--${flag}: expected ${range.integer === true ? 'a whole number' : 'a number'} from ${range.min} to ${range.max}, got ${Number.isNaN(value) ? 'something else' : String(value)}`;
}

/** Parses `HOST=URL` pairs of `--upstream`; throws on a malformed one. */
export function parseUpstreams(pairs: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const host = eq === -1 ? '' : pair.slice(0, eq).trim().toLowerCase();
    const url = eq === -1 ? '' : pair.slice(eq + 1).trim();
    if (host === '' || !/^https?:\/\/[^/]+/.test(url)) {
      throw new Error(`--upstream "${pair}": expected HOST=URL, e.g. ghcr.io=http://127.0.0.1:5000`);
    }
    map.set(host, url.replace(/\/+$/, ''));
  }
  return map;
}
