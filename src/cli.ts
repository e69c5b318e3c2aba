/**
 * Command line (SPEC §10), with yargs. Every flag can also come from a
 * GATEWAY_* environment variable (`--admin-port` ← GATEWAY_ADMIN_PORT), for
 * systemd `EnvironmentFile=`.
 *
 *   scarf-gateway [serve] [--manifest FILE] [--port 8081] ...
 *   scarf-gateway validate FILE
 */
import cluster from 'node:cluster';
import { fileURLToPath } from 'node:url';
import yargs, { type Options } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { operationsLog } from './analytics/analytics-log.ts';
import { withEnvironment } from './env-options.ts';
import { formatProblem, ManifestError } from './errors.ts';
import { loadManifestFile } from './manifest/load-manifest.ts';
import { DEFAULTS, LOG_LEVELS, numberProblem, NUMBER_FLAGS, parseUpstreams, type GatewayOptions } from './options.ts';
import { startGateway, type Gateway } from './server.ts';
import { startPrimary, type Primary } from './cluster-primary.ts';

const EXAMPLE_MANIFEST = fileURLToPath(new URL('../config/manifest.json', import.meta.url));
/** How long a process ending on an unexpected error waits for its analytics lines to be written, in ms. */
const FATAL_FLUSH_MS = 2000;

/** The serve command's flags; each can also be set by its GATEWAY_* variable (env-options.ts). */
const SERVE_OPTIONS = {
  manifest: { alias: 'm', type: 'string', default: EXAMPLE_MANIFEST, defaultDescription: 'config/manifest.json', describe: 'Manifest file (watched; reloaded on change and on SIGHUP)' },
  host: { type: 'string', default: DEFAULTS.host, describe: 'Address of the public listener (0.0.0.0 or :: for all)' },
  port: { alias: 'p', type: 'number', default: DEFAULTS.port, describe: 'Public port' },
  'admin-host': { type: 'string', default: DEFAULTS.adminHost, describe: 'Address of the admin listener' },
  'admin-port': { type: 'number', default: DEFAULTS.adminPort, describe: 'Admin port: /healthz, /readyz, /metrics (-1 disables)' },
  'trust-proxy': { type: 'array', string: true, default: [...DEFAULTS.trustProxy], describe: 'Peers allowed to set X-Forwarded-Host/For: addresses, CIDRs, "loopback", "all" or "none"' },
  'anonymize-ip': { type: 'boolean', default: DEFAULTS.anonymizeIp, describe: 'Write client addresses truncated to IPv4 /24 and IPv6 /48 in analytics lines (a proxied request still sends the whole address in X-Forwarded-For)' },
  upstream: { type: 'array', string: true, default: [], describe: 'HOST=URL: send proxied traffic for backend HOST to URL instead (repeatable)' },
  'registry-auth': { type: 'string', describe: 'Docker config.json whose "auths" the gateway uses to pull from backends that need a login' },
  'redirect-agent': { type: 'array', string: true, default: [...DEFAULTS.redirectAgents], describe: 'User agents redirected to the registry (others are proxied): prefix:TEXT, contains:TEXT or equals:TEXT; repeatable' },
  'upstream-connect-timeout': { type: 'number', default: DEFAULTS.upstreamConnectTimeout, describe: 'Time to connect to a backend, in ms (504 beyond)' },
  'upstream-timeout': { type: 'number', default: DEFAULTS.upstreamTimeout, describe: 'Time a backend may stay silent (first byte, between chunks), in ms (504 beyond)' },
  'send-timeout': { type: 'number', default: DEFAULTS.sendTimeout, describe: 'Time a write of a proxied body, an npm package document or a large Python page waits for the client to take it, in ms; past it the response is cut off (nginx\'s send_timeout)' },
  'proxy-buffer-memory': { type: 'number', default: DEFAULTS.proxyBufferMemory, describe: 'MiB of read buffers the registry proxy may hold at 256 KiB per read (per process); past them, reads take 16 KiB' },
  'npm-cache-ttl': { type: 'number', default: DEFAULTS.npmCacheTtl, describe: 'How long an npm package document is served from cache before it is revalidated with the backend, in ms' },
  'npm-cache-memory': { type: 'number', default: DEFAULTS.npmCacheMemory, describe: 'MiB the cached npm package documents and their renderings may hold (per process); the least recently used go first' },
  analytics: { type: 'string', default: DEFAULTS.analytics, describe: 'Where analytics lines go: "-" for stdout, or a file to append to' },
  'max-url-length': { type: 'number', default: DEFAULTS.maxUrlLength, describe: 'Longest request target in bytes (414 beyond)' },
  'max-header-size': { type: 'number', default: DEFAULTS.maxHeaderSize, describe: 'Largest request head in bytes (431 beyond)' },
  'max-body-size': { type: 'number', default: DEFAULTS.maxBodySize, describe: 'Largest request body read for events, in bytes (413 beyond)' },
  'max-body-events': { type: 'number', default: DEFAULTS.maxBodyEvents, describe: 'Events kept from one request body' },
  'headers-timeout': { type: 'number', default: DEFAULTS.headersTimeout, describe: 'Time to receive the request head, in ms' },
  'request-timeout': { type: 'number', default: DEFAULTS.requestTimeout, describe: 'Time to receive the whole request, in ms' },
  'keep-alive-timeout': { type: 'number', default: DEFAULTS.keepAliveTimeout, describe: 'Idle keep-alive connections close after this many ms' },
  'drain-timeout': { type: 'number', default: DEFAULTS.drainTimeout, describe: 'On SIGTERM/SIGINT, in-flight requests get this many ms to finish' },
  'stop-delay': { type: 'number', default: DEFAULTS.stopDelay, describe: 'On SIGTERM/SIGINT, ms to go on accepting and serving requests, with /readyz answering 503, before the drain: time for a load balancer or Kubernetes to stop sending' },
  'watch-interval': { type: 'number', default: DEFAULTS.watchInterval, describe: 'Interval of the manifest backup check (stat), in ms' },
  'watch-debounce': { type: 'number', default: DEFAULTS.watchDebounce, describe: 'Quiet time after a file event before the manifest is read, in ms' },
  workers: { type: 'number', default: DEFAULTS.workers, describe: 'Worker processes (node:cluster) sharing the port; the primary watches the manifest and serves the admin port' },
  'tls-cert': { type: 'array', string: true, default: [], describe: 'PEM certificate chain (leaf first) for the public listener, which then speaks HTTPS; read again when it changes. Repeatable: each serves the names it lists, the first any other' },
  'tls-key': { type: 'array', string: true, default: [], describe: 'PEM private key of the --tls-cert in the same place' },
  'log-level': { type: 'string', choices: LOG_LEVELS, default: DEFAULTS.logLevel, describe: 'Operational log level (stderr)' },
} as const satisfies Record<string, Options>;

/** `strict`: a warning fails the check too (for a manifest's CI). */
async function validate(file: string, strict: boolean): Promise<number> {
  const { table, problems } = await loadManifestFile(file);
  for (const w of problems.warnings) console.log(`warning: ${formatProblem(w)}`);
  for (const e of problems.errors) console.log(formatProblem(e));
  if (table === null) {
    console.log(`${file}: invalid (${problems.errors.length} problem${problems.errors.length === 1 ? '' : 's'})`);
    return 1;
  }
  const warnings = problems.warnings.length;
  if (strict && warnings > 0) {
    console.log(`${file}: ${warnings} warning${warnings === 1 ? '' : 's'}, which --strict counts as problems`);
    return 1;
  }
  const rules = Object.values(table.counts).reduce((a, b) => a + (b ?? 0), 0);
  console.log(`${file}: ok (${rules} rules, ${table.domains.size} domains)`);
  return 0;
}

/** `unused`: GATEWAY_* variables that name no flag, said once (by the primary with --workers). */
async function serve(options: GatewayOptions, unused: readonly string[]): Promise<void> {
  const log = operationsLog(options.logLevel);
  if (unused.length > 0 && !cluster.isWorker) log.warn({ variables: unused }, 'GATEWAY_* variables that name no flag are ignored');
  const starting: Promise<Primary | Gateway> =
    options.workers > 1 && cluster.isPrimary ? startPrimary(options, log) : startGateway(options, log, cluster.isWorker ? 'worker' : 'single');
  // Signals are handled from the first moment: one that arrives while the
  // gateway is still starting stops it as soon as it is up. Another one
  // while it stops changes nothing: with --workers, each worker gets the
  // signal twice, from the primary and from whoever sent it to every
  // process (systemd stops the whole control group; Ctrl-C in a terminal
  // signals the whole process group), and the second must not end it
  // before its requests and analytics lines are done.
  let stopping = false;
  // A fault the code did not expect (a bug): said in the operations log, as JSON like the rest, and the
  // analytics lines the process holds are written before it ends (up to 100 ms of them, else lost).
  let running: Primary | Gateway | null = null;
  void starting.then((gateway) => (running = gateway), () => undefined);
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'unexpected error: the process ends, once the analytics lines it holds are written');
    running?.flushAnalytics(FATAL_FLUSH_MS);
    process.exit(1);
  });
  const stop = (signal: string) => {
    if (stopping) {
      log.info({ signal }, 'already stopping: in-flight requests finish and the analytics lines are written first (SIGKILL ends it at once, losing them)');
      return;
    }
    stopping = true;
    if (options.stopDelay > 0) log.info({ signal, stopDelay: options.stopDelay }, 'stopping: not ready, still serving for --stop-delay, then draining in-flight requests');
    else log.info({ signal }, 'stopping: draining in-flight requests');
    starting
      .then((gateway) => gateway.close())
      .then(() => {
        log.info('stopped');
        process.exit(0);
      }, () => process.exit(process.exitCode ?? 1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    void starting.then((gateway) => {
      // Workers take their manifest from the primary; only it reloads. Certificates and credentials each process reads itself (the primary passes the signal on).
      if (!cluster.isWorker) void gateway.reload('SIGHUP', true);
      gateway.rereadFiles();
    }, () => undefined);
  });
  // After a rotation (logrotate's postrotate). SIGUSR1 belongs to Node's debugger.
  process.on('SIGUSR2', () => void starting.then((gateway) => gateway.reopenAnalytics(), () => undefined));
  try {
    await starting;
  } catch (e) {
    if (e instanceof ManifestError) {
      for (const p of e.problems) process.stderr.write(`${formatProblem(p)}\n`);
      process.stderr.write(`${options.manifest}: invalid manifest, not starting\n`);
    } else {
      process.stderr.write(`cannot start: ${(e as Error).message}\n`);
    }
    process.exit(1);
  }
}

export async function main(argv: string[]): Promise<void> {
  const environment = withEnvironment(SERVE_OPTIONS, process.env);
  /** ` (from GATEWAY_PORT="...")` when a flag's value is the one its variable gave, for a message about it. */
  const from = (flag: string, value: unknown): string => {
    const source = environment.sources.get(flag);
    return source !== undefined && Object.is(value, source.value) ? ` (from ${source.variable})` : '';
  };
  await yargs(argv)
    .scriptName('scarf-gateway')
    .usage('$0 [serve] [options]\n$0 validate FILE\n\nServes artifacts from your domains by redirecting (or proxying) to where they are hosted.')
    .command(
      ['serve', '$0'],
      'Serve the manifest (default command)',
      (y) =>
        y
          .options(environment.options)
          // yargs reads `--port abc` as NaN: refused here, not found later as a timer that fires at once.
          .check((args) => {
            if (environment.problems.length > 0) throw new Error(environment.problems.join('\n'));
            for (const flag of Object.keys(NUMBER_FLAGS)) {
              const problem = numberProblem(flag, args[flag] as number);
              if (problem !== null) throw new Error(problem + from(flag, args[flag]));
            }
            // node refuses a head timeout longer than the request's (it could never fire).
            const [head, whole] = [args['headers-timeout'] as number, args['request-timeout'] as number];
            if (whole > 0 && head > whole) throw new Error(`--headers-timeout (${head}) must not be longer than --request-timeout (${whole})`);
            const [certs, keys] = [args['tls-cert'] as string[], args['tls-key'] as string[]];
            if (certs.length !== keys.length) throw new Error(`--tls-cert and --tls-key go together, in pairs: ${certs.length} certificate(s), ${keys.length} key(s)`);
            return true;
          }),
      async (args) => {
        let upstreams: Map<string, string>;
        try {
          upstreams = parseUpstreams(args.upstream);
        } catch (e) {
          process.stderr.write(`${(e as Error).message}\n`);
          process.exitCode = 2;
          return;
        }
        await serve(
          Object.freeze({
            manifest: args.manifest,
            host: args.host,
            port: args.port,
            adminHost: args.adminHost,
            adminPort: args.adminPort,
            trustProxy: args.trustProxy,
            anonymizeIp: args.anonymizeIp,
            upstreams,
            registryAuth: args.registryAuth ?? null,
            redirectAgents: args.redirectAgent,
            upstreamConnectTimeout: args.upstreamConnectTimeout,
            upstreamTimeout: args.upstreamTimeout,
            sendTimeout: args.sendTimeout,
            proxyBufferMemory: args.proxyBufferMemory,
            npmCacheTtl: args.npmCacheTtl,
            npmCacheMemory: args.npmCacheMemory,
            analytics: args.analytics,
            maxUrlLength: args.maxUrlLength,
            maxHeaderSize: args.maxHeaderSize,
            maxBodySize: args.maxBodySize,
            maxBodyEvents: args.maxBodyEvents,
            headersTimeout: args.headersTimeout,
            requestTimeout: args.requestTimeout,
            keepAliveTimeout: args.keepAliveTimeout,
            drainTimeout: args.drainTimeout,
            stopDelay: args.stopDelay,
            watchInterval: args.watchInterval,
            watchDebounce: args.watchDebounce,
            workers: args.workers,
            logLevel: args.logLevel,
            tls: args.tlsCert.map((cert, i) => ({ cert, key: args.tlsKey[i] })),
          }),
          environment.unused,
        );
      },
    )
    .command(
      'validate <file>',
      'Check a manifest (schema and semantics) and print each problem with its JSON pointer; exit 0 or 1',
      (y) =>
        y
          .positional('file', { type: 'string', demandOption: true, describe: 'Manifest file' })
          .option('strict', { type: 'boolean', default: false, describe: 'Warnings (a rule that never serves, a field the gateway does not know) count as problems: exit 1 on one, as for a manifest checked in CI' }),
      async (args) => {
        process.exitCode = await validate(args.file, args.strict);
      },
    )
    .strict()
    .help()
    .parseAsync();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await main(hideBin(process.argv));
}
