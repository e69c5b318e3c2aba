/**
 * `--workers`: the primary's /metrics adds up the workers' own metrics
 * (prom-client's aggregation: sums, or what a metric's `aggregator` says).
 * prom-client's `clusterMetrics` asks every worker and fails the whole
 * scrape (a 500, after 5 s) when one does not answer, which a worker just
 * forked to replace one that died cannot do yet. Here the primary asks the
 * workers that listen, and leaves out of that scrape one that stays silent
 * for `ANSWER_MS`.
 */
import type { Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/** How long the primary waits for a worker's metrics, in ms. */
const ANSWER_MS = 2000;

interface MetricsWanted {
  readonly type: 'metrics-wanted';
  readonly id: number;
}

interface MetricsMessage {
  readonly type: 'metrics';
  readonly id: number;
  readonly metrics: object[];
}

/** In a worker: answer the primary's asks with the metrics of `registry`. */
export function answerMetrics(registry: Registry): void {
  process.on('message', (m: MetricsWanted) => {
    if (m?.type !== 'metrics-wanted') return;
    void registry.getMetricsAsJSON().then((metrics) => process.send!({ type: 'metrics', id: m.id, metrics } satisfies MetricsMessage));
  });
}

/** In the primary. */
export class WorkerMetrics {
  #next = 0;
  readonly #waiting = new Map<number, (metrics: object[]) => void>();

  /** A message from a worker: its answer, if that is what it is. */
  take(m: MetricsMessage): void {
    if (m?.type === 'metrics') this.#waiting.get(m.id)?.(m.metrics);
  }

  /** The metrics of `workers`, added up, as Prometheus text. */
  async text(workers: Iterable<Worker>): Promise<string> {
    const answers = await Promise.all([...workers].map((w) => this.#ask(w)));
    return AggregatorRegistry.aggregate(answers.filter((a) => a !== null)).metrics();
  }

  /** One worker's metrics, or null when it does not answer in time. */
  #ask(worker: Worker): Promise<object[] | null> {
    const id = this.#next++;
    return new Promise((resolve) => {
      const answer = (metrics: object[] | null) => {
        clearTimeout(timer);
        this.#waiting.delete(id);
        resolve(metrics);
      };
      const timer = setTimeout(() => answer(null), ANSWER_MS);
      this.#waiting.set(id, answer);
      if (!worker.isConnected()) return answer(null);
      worker.send({ type: 'metrics-wanted', id } satisfies MetricsWanted, (e) => {
        if (e !== null) answer(null);
      });
    });
  }
}
