/**
 * Prometheus metrics (SPEC §10), with prom-client, served on the admin port
 * at /metrics. Requests are counted in plain numbers on the hot path and
 * handed to prom-client when /metrics is scraped.
 */
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Registry, collectDefaultMetrics, type Histogram } from 'prom-client';
import type { Outcome } from '../analytics/capture.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import type { TokenCacheStats } from '../proxy/registry-auth.ts';

/** The gateway's version, from its package.json. */
const VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;

/**
 * Manifest metrics: reloads, rules, the active manifest; and which build
 * serves it. Kept apart from the request metrics because with `--workers`
 * the primary owns them (it alone decides reloads) while the workers count
 * requests.
 */
export class ManifestMetrics {
  readonly registry: Registry;
  readonly #reloads: Counter<'result'>;
  readonly #rules: Gauge<'kind'>;
  readonly #manifest: Gauge<'sha256'>;
  readonly #loadedAt: Gauge;

  constructor(registry: Registry) {
    this.registry = registry;
    const registers = [registry];
    this.#reloads = new Counter({ name: 'gateway_manifest_reloads_total', help: 'Manifest reloads, by result (success, rejected).', labelNames: ['result'], registers });
    this.#rules = new Gauge({ name: 'gateway_rules_loaded', help: 'Rules in the active manifest, by kind.', labelNames: ['kind'], registers });
    this.#manifest = new Gauge({ name: 'gateway_manifest_info', help: 'The active manifest: its SHA-256 as a label, value 1.', labelNames: ['sha256'], registers });
    this.#loadedAt = new Gauge({ name: 'gateway_manifest_loaded_timestamp_seconds', help: 'When the active manifest was compiled.', registers });
    this.#reloads.inc({ result: 'success' }, 0);
    this.#reloads.inc({ result: 'rejected' }, 0);
    // The Prometheus convention for what is running: value 1, the facts as labels.
    new Gauge({ name: 'gateway_build_info', help: "The gateway's version and Node's, as labels; value 1.", labelNames: ['version', 'node'], registers }).set({ version: VERSION, node: process.version }, 1);
  }

  reload(result: 'success' | 'rejected'): void {
    this.#reloads.inc({ result });
  }

  manifest(table: RoutingTable): void {
    this.#rules.reset();
    for (const [kind, n] of Object.entries(table.counts)) this.#rules.set({ kind }, n ?? 0);
    this.#manifest.reset();
    this.#manifest.set({ sha256: table.hash }, 1);
    this.#loadedAt.set(table.loadedAt / 1000);
  }
}

/**
 * With `--workers` and a feed that is not a regular file, the primary
 * writes the workers' lines (line-relay.ts): how often it fell behind. The
 * workers count their own waits in `gateway_analytics_blocking_writes_total`.
 */
export function relayMetrics(registry: Registry, relay: { readonly blockingWrites: number }): void {
  countedElsewhere(
    registry,
    'gateway_analytics_relay_blocking_writes_total',
    "Times the primary, which writes the workers' analytics lines to a destination that is not a regular file, waited for it, 32 MiB behind, reading no worker's lines meanwhile.",
    () => relay.blockingWrites,
  );
}

/** A counter kept in a plain number by its owner: read when /metrics is scraped. */
function countedElsewhere(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A gauge read from its owner when /metrics is scraped; `aggregator` says how --workers combine it (prom-client's default: sum). */
function measuredElsewhere(registry: Registry, name: string, help: string, read: () => number, aggregator?: 'min'): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    ...(aggregator === undefined ? {} : { aggregator }),
    collect() {
      this.set(read());
    },
  });
}

/** Where the request metrics read what others count. */
export interface MetricSources {
  tokenStats(): TokenCacheStats | null;
  analyticsBlockingWrites(): number;
  analyticsFull(): boolean;
  proxyReadBuffers(): number;
  npmCacheBytes(): number;
  /** With `--tls-cert`: the earliest expiry of the certificates in use, and the handshakes that failed. */
  tls?: { expiry(): Date; handshakeErrors(): number };
}

/**
 * Request metrics: counted by whoever serves requests. The hot path counts
 * in plain numbers; prom-client reads them when /metrics is scraped. Its own
 * `inc`/`observe` cost ≈ 3 µs per request (label objects, hashing), more
 * than routing the request (bench/results.md).
 */
export class RequestMetrics {
  readonly registry: Registry;
  /** Requests by outcome, then kind: constant strings, so no key is built per request. */
  readonly #requests = new Map<Outcome, Map<string, number>>();
  readonly #latency: LatencyHistogram;
  readonly #upstreamErrors: Counter<'code'>;
  readonly #sendTimeouts: Counter;

  constructor(registry: Registry, sources: MetricSources) {
    const { tokenStats, analyticsBlockingWrites, analyticsFull, proxyReadBuffers, npmCacheBytes, tls } = sources;
    this.registry = registry;
    const requests = this.#requests;
    new Counter({
      name: 'gateway_requests_total',
      help: 'Requests answered, by outcome and capture type (none when nothing matched).',
      labelNames: ['outcome', 'kind'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [outcome, kinds] of requests) for (const [kind, n] of kinds) this.inc({ outcome, kind }, n);
      },
    });
    this.#latency = new LatencyHistogram(
      'gateway_request_duration_seconds',
      'Time from request to answer (to the end of the stream for proxied answers).',
      [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5, 30],
    );
    // prom-client formats and aggregates any object with its metrics' `get()`.
    registry.registerMetric(this.#latency as unknown as Histogram);
    this.#upstreamErrors = new Counter({
      name: 'gateway_upstream_errors_total',
      help: 'Proxied requests (and npm document fetches) whose backend failed, before its answer or midway through its body, by error code.',
      labelNames: ['code'] as const,
      registers: [registry],
    });
    this.#sendTimeouts = new Counter({
      name: 'gateway_send_timeouts_total',
      help: 'Answers cut off because the client took nothing for --send-timeout (proxied bodies, npm documents, large Python pages).',
      registers: [registry],
    });
    countedElsewhere(
      registry,
      'gateway_analytics_blocking_writes_total',
      'Times requests waited for the analytics destination, which was 32 MiB behind.',
      analyticsBlockingWrites,
    );
    measuredElsewhere(
      registry,
      'gateway_analytics_destination_full',
      'Processes whose analytics destination has no room (ENOSPC, EDQUOT) just now: their lines wait in memory.',
      () => (analyticsFull() ? 1 : 0),
    );
    measuredElsewhere(registry, 'gateway_proxy_read_buffer_bytes', 'Bytes of read buffers held for connections to backends (see --proxy-buffer-memory).', proxyReadBuffers);
    measuredElsewhere(registry, 'gateway_npm_cache_bytes', 'Bytes the cached npm package documents hold, their text and renderings (see --npm-cache-memory).', npmCacheBytes);
    if (tls !== undefined) {
      measuredElsewhere(
        registry,
        'gateway_tls_certificate_expiry_timestamp_seconds',
        "When the first of the public listener's certificates to expire expires (the earliest over them and over --workers).",
        () => tls.expiry().getTime() / 1000,
        'min',
      );
      countedElsewhere(
        registry,
        'gateway_tls_handshake_errors_total',
        'Connections to the public listener whose TLS handshake failed (a client refusing the certificate, plain HTTP, a timeout).',
        tls.handshakeErrors,
      );
    }
    collectDefaultMetrics({ register: registry, prefix: 'gateway_' });
    measuredElsewhere(registry, 'gateway_registry_token_cache_hits', 'Registry token cache lookups that found a token.', () => tokenStats()?.hits ?? 0);
    measuredElsewhere(registry, 'gateway_registry_token_cache_misses', 'Registry token cache lookups that found none.', () => tokenStats()?.misses ?? 0);
  }

  /** Hot path. */
  request(outcome: Outcome, kind: string | null, seconds: number): void {
    let kinds = this.#requests.get(outcome);
    if (kinds === undefined) this.#requests.set(outcome, (kinds = new Map()));
    const k = kind ?? 'none';
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
    this.#latency.observe(seconds);
  }

  upstreamError(code: string): void {
    this.#upstreamErrors.inc({ code });
  }

  sendTimeout(): void {
    this.#sendTimeouts.inc();
  }
}

/** A histogram without labels, counted by hand, read the way prom-client reads its own. */
class LatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #bounds: readonly number[];
  /** Per bucket (not cumulative); the last one is +Inf. */
  readonly #counts: Float64Array;
  #sum = 0;
  readonly name: string;
  readonly help: string;

  constructor(name: string, help: string, bounds: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Hot path. */
  observe(value: number): void {
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]) i++;
    this.#counts[i]++;
    this.#sum += value;
  }

  async get() {
    const bucket = `${this.name}_bucket`;
    const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      cumulative += this.#counts[i];
      values.push({ value: cumulative, labels: { le: i < this.#bounds.length ? this.#bounds[i] : '+Inf' }, metricName: bucket });
    }
    values.push({ value: this.#sum, labels: {}, metricName: `${this.name}_sum` }, { value: cumulative, labels: {}, metricName: `${this.name}_count` });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
