/**
 * Prometheus metrics (SPEC §10), with prom-client, served on the admin port
 * at /metrics. Label children are created once per label set and reused, so
 * counting a request is a property lookup and an increment.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Outcome } from '../analytics/capture.ts';
import type { RoutingTable } from '../routing/routing-table.ts';
import type { TokenCacheStats } from '../proxy/registry-auth.ts';

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #requests = new Counter({
    name: 'gateway_requests_total',
    help: 'Requests answered, by outcome and capture type (none when nothing matched).',
    labelNames: ['outcome', 'kind'] as const,
    registers: [this.registry],
  });
  readonly #latency = new Histogram({
    name: 'gateway_request_duration_seconds',
    help: 'Time from request to answer (to the end of the stream for proxied answers).',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5, 30],
    registers: [this.registry],
  });
  readonly #reloads = new Counter({
    name: 'gateway_manifest_reloads_total',
    help: 'Manifest reloads, by result (success, rejected).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly #rules = new Gauge({
    name: 'gateway_rules_loaded',
    help: 'Rules in the active manifest, by kind.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly #manifest = new Gauge({
    name: 'gateway_manifest_info',
    help: 'The active manifest: its SHA-256 as a label, value 1.',
    labelNames: ['sha256'] as const,
    registers: [this.registry],
  });
  readonly #loadedAt = new Gauge({
    name: 'gateway_manifest_loaded_timestamp_seconds',
    help: 'When the active manifest was compiled.',
    registers: [this.registry],
  });
  readonly #upstreamErrors = new Counter({
    name: 'gateway_upstream_errors_total',
    help: 'Proxied requests whose backend failed, by error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly #children = new Map<string, { inc(): void }>();

  constructor(tokenStats: () => TokenCacheStats | null) {
    collectDefaultMetrics({ register: this.registry, prefix: 'gateway_' });
    new Gauge({
      name: 'gateway_registry_token_cache_hits',
      help: 'Registry token cache lookups that found a token.',
      registers: [this.registry],
      collect() {
        this.set(tokenStats()?.hits ?? 0);
      },
    });
    new Gauge({
      name: 'gateway_registry_token_cache_misses',
      help: 'Registry token cache lookups that found none.',
      registers: [this.registry],
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

  upstreamError(code: string): void {
    this.#upstreamErrors.inc({ code });
  }
}
