/**
 * Prometheus metrics (SPEC §10), with prom-client, served on the admin port
 * at /metrics. Label children are created once per label set and reused, so
 * counting a request is a property lookup and an increment.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Outcome } from '../analytics/capture.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import type { TokenCacheStats } from '../proxy/registry-auth.ts';

/**
 * Manifest metrics: reloads, rules, the active manifest. Kept apart from the
 * request metrics because with `--workers` the primary owns them (it alone
 * decides reloads) while the workers count requests.
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

/** Request metrics: counted by whoever serves requests. */
export class RequestMetrics {
  readonly registry: Registry;
  readonly #requests: Counter<'outcome' | 'kind'>;
  readonly #latency: Histogram;
  readonly #upstreamErrors: Counter<'code'>;
  readonly #children = new Map<string, { inc(): void }>();

  constructor(registry: Registry, tokenStats: () => TokenCacheStats | null) {
    this.registry = registry;
    this.#requests = new Counter({
    name: 'gateway_requests_total',
    help: 'Requests answered, by outcome and capture type (none when nothing matched).',
    labelNames: ['outcome', 'kind'] as const,
    registers: [registry],
  });
    this.#latency = new Histogram({
    name: 'gateway_request_duration_seconds',
    help: 'Time from request to answer (to the end of the stream for proxied answers).',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5, 30],
    registers: [registry],
  });
    this.#upstreamErrors = new Counter({
    name: 'gateway_upstream_errors_total',
    help: 'Proxied requests whose backend failed, by error code.',
    labelNames: ['code'] as const,
    registers: [registry],
  });
    collectDefaultMetrics({ register: registry, prefix: 'gateway_', eventLoopMonitoringPrecision: 1 });
    new Gauge({
      name: 'gateway_registry_token_cache_hits',
      help: 'Registry token cache lookups that found a token.',
      registers: [registry],
      collect() {
        this.set(tokenStats()?.hits ?? 0);
      },
    });
    new Gauge({
      name: 'gateway_registry_token_cache_misses',
      help: 'Registry token cache lookups that found none.',
      registers: [registry],
      collect() {
        this.set(tokenStats()?.misses ?? 0);
      },
    });
  }

  /** Hot path. */
  request(outcome: Outcome, kind: string | null, seconds: number): void {
    const key = `${outcome} ${kind ?? 'none'}`;
    let child = this.#children.get(key);
    if (child === undefined) this.#children.set(key, (child = this.#requests.labels(outcome, kind ?? 'none')));
    child.inc();
    this.#latency.observe(seconds);
  }

  upstreamError(code: string): void {
    this.#upstreamErrors.inc({ code });
  }
}
