/**
 * The running gateway: public listener, admin listener, the current routing
 * table, and graceful shutdown. `startGateway` resolves once both listeners
 * are up and a manifest is loaded; it rejects when the manifest is invalid.
 */
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { analyticsLog, feedDestination, type AnalyticsLog } from './analytics/analytics-log.ts';
import { RELAY_FD_VARIABLE } from './analytics/line-relay.ts';
import { createAdminHandler } from './admin/admin-handler.ts';
import { formatProblem, ManifestError } from './errors.ts';
import { answerRefusedRequests } from './http/refused-requests.ts';
import { createRequestHandler, type HandlerState } from './http/request-handler.ts';
import { createTlsListener, type TlsListener } from './http/tls-listener.ts';
import { trustedProxies } from './http/trusted-proxies.ts';
import { loadManifestFile } from './manifest/load-manifest.ts';
import { ManifestWatcher } from './reload/manifest-watcher.ts';
import { PrimaryManifests } from './reload/primary-manifests.ts';
import { Reloader } from './reload/reloader.ts';
import type { RoutingTable } from './routing/routing-table.ts';
import type { GatewayOptions } from './options.ts';
import { Registry } from 'prom-client';
import { ManifestMetrics, RequestMetrics } from './admin/metrics.ts';
import { answerMetrics } from './admin/worker-metrics.ts';
import { RegistryAuth, fetchRegistryToken, readCredentials } from './proxy/registry-auth.ts';
import { UpstreamFailureLog } from './proxy/upstream-failures.ts';
import { ReadBudget } from './proxy/backend-client.ts';
import { RegistryProxy } from './proxy/registry-proxy.ts';
import { Upstreams } from './proxy/upstreams.ts';
import { NpmDocuments } from './rules/npm-cache.ts';
import { compileAgentRules } from './proxy/user-agents.ts';
import type { RouteServices } from './routing/route.ts';

/**
 * `single`: one process does everything, watcher included.
 * `worker`: a cluster worker; the primary watches the manifest, sends the
 * one it serves when the worker asks and each valid new one after
 * (primary-manifests.ts), and serves the admin port.
 */
export type Role = 'single' | 'worker';

export interface Gateway {
  /** The bound public port (useful with port 0). */
  readonly port: number;
  /** The bound admin port, or null when disabled. */
  readonly adminPort: number | null;
  readonly state: HandlerState;
  /** Look at the manifest file again (SIGHUP forces a reload of identical content); nothing in a `--workers` worker, whose primary reloads. */
  reload(reason: string, force?: boolean): Promise<void>;
  /** Open the `--analytics` file again, after a rotation renamed it (SIGUSR2). */
  reopenAnalytics(): void;
  /** Read `--tls-cert`, `--tls-key` and `--registry-auth` again (SIGHUP); a file that is now bad is logged, and the old content kept. */
  rereadFiles(): void;
  /** Write the analytics lines held, blocking, at most `timeoutMs`: the process is about to end on an unexpected error. */
  flushAnalytics(timeoutMs: number): boolean;
  /** Stop accepting, drain in-flight requests, flush analytics. */
  close(): Promise<void>;
}

/** How often node looks for requests past --headers-timeout / --request-timeout (it goes through the open connections in C++). */
const CONNECTIONS_CHECK_MS = 250;

/** `server.listen`, as a promise of the bound port that fails with the listen error (a port in use). */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startGateway(options: GatewayOptions, log: Logger, role: Role = 'single'): Promise<Gateway> {
  const loadStart = performance.now();
  const fromPrimary = role === 'worker' ? new PrimaryManifests() : null;
  const loaded = fromPrimary !== null ? await fromPrimary.first : await loadManifestFile(options.manifest);
  const compileMs = Math.round(performance.now() - loadStart);
  for (const w of loaded.problems.warnings) log.warn({ problem: formatProblem(w) }, 'manifest warning');
  if (loaded.table === null) throw new ManifestError(loaded.problems.errors);
  const state: HandlerState = { table: loaded.table };
  log.info({ manifest: options.manifest, rules: loaded.table.counts, hash: loaded.table.hash, compileMs }, 'manifest loaded');

  // A worker writes to its pipe to the primary when the primary relays the
  // feed (not a regular file), else it appends to the file itself.
  const relayFd = role === 'worker' ? process.env[RELAY_FD_VARIABLE] : undefined;
  const analytics: AnalyticsLog = analyticsLog(relayFd !== undefined ? Number(relayFd) : feedDestination(options.analytics), (code) => {
    if (code === null) log.info({ analytics: options.analytics }, 'analytics destination takes lines again; the lines that waited are written');
    else log.error({ analytics: options.analytics, code }, 'analytics destination has no room; lines wait in memory, and requests wait once 32 MiB are waiting');
  });
  const trusted = trustedProxies(options.trustProxy);
  const upstreamFailures = new UpstreamFailureLog(log);
  const auth =
    options.registryAuth === null
      ? null
      : new RegistryAuth(readCredentials(options.registryAuth), fetchRegistryToken, {
          timeout: options.upstreamTimeout,
          onRefused: (realm, reason) => upstreamFailures.report(realm, 'UNAUTHORIZED', reason),
        });
  const readBudget = new ReadBudget(options.proxyBufferMemory * 1048576);
  // Proxied bodies, npm documents and large Python pages are cut off by the same --send-timeout.
  const onSendTimeout = () => metrics.sendTimeout();
  const registry = new Registry();
  const metrics = new RequestMetrics(registry, {
    tokenStats: () => auth?.stats ?? null,
    analyticsBlockingWrites: () => analytics.blockingWrites,
    analyticsFull: () => analytics.full,
    proxyReadBuffers: () => readBudget.held,
    // Read when /metrics is scraped, once the services below exist.
    npmCacheBytes: () => services.npm.bytes,
    tls: options.tls.length === 0 ? undefined : { expiry: () => tls!.expiry, handshakeErrors: () => tls!.handshakeErrors },
  });
  // With workers the primary owns the manifest metrics; a worker's stay private.
  const manifestMetrics = new ManifestMetrics(role === 'worker' ? new Registry() : registry);
  manifestMetrics.manifest(loaded.table);
  // Cluster workers report to the primary, which serves the admin port.
  if (role === 'worker') answerMetrics(registry);
  const upstreams = new Upstreams(options.upstreams);
  const registryProxy = new RegistryProxy({
    upstreams,
    connectTimeout: options.upstreamConnectTimeout,
    firstByteTimeout: options.upstreamTimeout,
    sendTimeout: options.sendTimeout,
    onSendTimeout,
    readBudget,
    auth,
    onUpstreamError: (code, backend, reason) => {
      metrics.upstreamError(code);
      upstreamFailures.report(backend, code, reason);
    },
    onCredentialsRefused: (backend) => upstreamFailures.report(backend, 'UNAUTHORIZED', "the registry answered 401 to the gateway's credentials"),
  });
  const services: RouteServices = {
    followsRegistryRedirects: compileAgentRules(options.redirectAgents),
    registryProxy,
    npm: new NpmDocuments({
      upstreams,
      ttl: options.npmCacheTtl,
      timeout: options.upstreamTimeout,
      maxBytes: options.npmCacheMemory * 1048576,
      onUpstreamError: (backend, reason) => {
        metrics.upstreamError('UPSTREAM_UNREACHABLE');
        upstreamFailures.report(backend, 'UPSTREAM_UNREACHABLE', reason);
      },
    }),
    trustsPeer: (req) => trusted.trusts(req.socket.remoteAddress),
    sendTimeout: options.sendTimeout,
    onSendTimeout,
  };
  const handler = createRequestHandler(state, {
    trusted,
    anonymizeIp: options.anonymizeIp,
    maxUrlLength: options.maxUrlLength,
    body: { maxBytes: options.maxBodySize, maxEvents: options.maxBodyEvents },
    analytics,
    services,
    onFinished: (outcome, kind, seconds) => metrics.request(outcome, kind, seconds),
  });

  const serverOptions: ServerOptions = {
    maxHeaderSize: options.maxHeaderSize,
    // The handler answers a missing Host itself, with an id and a line (MISSING_HOST).
    requireHostHeader: false,
    headersTimeout: options.headersTimeout,
    requestTimeout: options.requestTimeout,
    keepAliveTimeout: options.keepAliveTimeout,
    // node looks for connections past those timeouts every 30 s by default: a slow head got up to 30 s more.
    connectionsCheckingInterval: CONNECTIONS_CHECK_MS,
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    try {
      handler(req, res);
    } catch (e) {
      // A bug, not a bad request: answer and log instead of crashing.
      log.error({ err: e, url: req.url }, 'request handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-length': '0' }).end();
    }
  };
  // A certificate that cannot serve stops the start, as an invalid manifest does.
  const tls: TlsListener | null =
    options.tls.length === 0
      ? null
      : createTlsListener(serverOptions, { certificates: options.tls, pollMs: options.watchInterval, handshakeTimeout: options.headersTimeout }, onRequest, log);
  const server: Server = tls?.server ?? createServer(serverOptions, onRequest);
  // An expectation other than 100-continue is served as if absent, as RFC 9110 §10.1.1 allows (nginx does
  // the same); node's own answer was a 417 with no id and no line, and the download went uncounted.
  server.on('checkExpectation', onRequest);
  // A request queued behind another on a pipelined connection gets no 100 (Continue): node 24 writes such a
  // response's head ahead of the 100 it buffered for it when the body is a Buffer (a large Python page, an npm
  // document), and the client read "HTTP/1.1 100 Continue" as body bytes. RFC 9110 §10.1.1 lets a server omit it;
  // the client sends its body after its own wait, and node closes the connection after such an answer.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (res.socket !== null) res.writeContinue();
    onRequest(req, res);
  });
  answerRefusedRequests(server, {
    analytics,
    trusted,
    anonymizeIp: options.anonymizeIp,
    onRefused: () => metrics.request('rejected', null, 0),
  });

  /** Set once the gateway stops. */
  let closing: Promise<void> | null = null;
  const port = await listen(server, options.port, options.host);
  let admin: Server | null = null;
  let adminPort: number | null = null;
  if (options.adminPort >= 0 && role === 'single') {
    // Not ready once stopping: a load balancer stops sending requests while the ones in flight drain.
    admin = createServer(createAdminHandler({ ready: () => state.table !== null && closing === null, metrics: () => registry.metrics() }));
    adminPort = await listen(admin, options.adminPort, options.adminHost);
  }

  const apply = (table: RoutingTable) => {
    // Build, freeze, swap: one assignment; requests in flight keep their table.
    state.table = table;
    manifestMetrics.manifest(table);
  };
  // A worker never reads the manifest file: the primary reloads, and sends it each new table.
  let reloader: Reloader | null = null;
  let watcher: ManifestWatcher | null = null;
  if (fromPrimary !== null) fromPrimary.follow(apply);
  else {
    const own = new Reloader(options.manifest, loaded.table, log, {
      apply(table) {
        apply(table);
        manifestMetrics.reload('success');
      },
      rejected: () => manifestMetrics.reload('rejected'),
    });
    reloader = own;
    watcher = new ManifestWatcher(options.manifest, { debounceMs: options.watchDebounce, pollMs: options.watchInterval }, (reason) => void own.check(reason));
    await watcher.start();
  }

  // Last: the process is fully up (watcher included) when it says so.
  log.info({ host: options.host, port, adminPort }, role === 'worker' ? 'worker listening' : 'listening');

  async function close(): Promise<void> {
    closing ??= (async () => {
      // Not ready from now (closing is set), still serving: a load balancer's time to stop sending.
      if (options.stopDelay > 0) await new Promise((resolve) => setTimeout(resolve, options.stopDelay));
      await watcher?.close();
      tls?.close();
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), options.drainTimeout);
      await drained;
      clearTimeout(timer);
      if (admin !== null) await new Promise<void>((resolve) => admin.close(() => resolve()));
      registryProxy.close();
      await analytics.close();
    })();
    return closing;
  }

  function reopenAnalytics(): void {
    try {
      if (analytics.reopen()) log.info({ file: options.analytics }, 'analytics file reopened');
    } catch (e) {
      log.error({ file: options.analytics, error: (e as Error).message }, 'analytics file cannot be reopened; lines go on to the old one');
    }
  }

  function rereadCredentials(): void {
    if (auth === null || options.registryAuth === null) return;
    try {
      auth.replaceCredentials(readCredentials(options.registryAuth));
      log.info({ file: options.registryAuth }, 'registry credentials read again');
    } catch (e) {
      log.error({ error: (e as Error).message }, 'registry credentials not read again; the old ones stay');
    }
  }

  return {
    port,
    adminPort,
    state,
    reload: async (reason, force = false) => reloader?.check(reason, force),
    reopenAnalytics,
    flushAnalytics: (timeoutMs) => analytics.flushSync(timeoutMs),
    rereadFiles: () => {
      tls?.reload();
      rereadCredentials();
    },
    close,
  };
}
