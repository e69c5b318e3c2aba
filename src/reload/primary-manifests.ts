/**
 * The manifests of a worker (`--workers`): the primary's, never the file's.
 * The file can have changed since the primary read it, or be broken (the
 * primary then keeps serving the last good one), and a worker replaced
 * after a crash must serve what the others serve. So a worker asks, once
 * its handler is in place; the primary answers with the manifest it serves
 * and then sends it every later one. Each is compiled against the table
 * before it, one at a time, so they take effect in the order sent.
 */
import { loadManifestText, type LoadResult } from '../manifest/load-manifest.ts';
import type { RoutingTable } from '../routing/routing-table.ts';

/** From the primary to its workers: the manifest to serve. */
export interface ManifestMessage {
  readonly type: 'manifest';
  readonly text: string;
  /** The text's SHA-256, as the primary computed it. */
  readonly hash: string;
  readonly reason: string;
}

/** From a worker to the primary: send me the manifest you serve, and every later one. */
export interface ManifestWanted {
  readonly type: 'manifest-wanted';
}

export class PrimaryManifests {
  /** The manifest to start with. */
  readonly first: Promise<LoadResult>;
  #table: RoutingTable | null = null;
  #chain: Promise<void> = Promise.resolve();
  #apply: ((table: RoutingTable) => void) | null = null;
  /** A later table that came before `follow`. */
  #waiting: RoutingTable | null = null;

  constructor() {
    let start: ((result: LoadResult) => void) | null = null;
    this.first = new Promise((resolve) => (start = resolve));
    process.on('message', (m: ManifestMessage) => {
      if (m?.type !== 'manifest') return;
      this.#chain = this.#chain.then(async () => {
        const result = await loadManifestText(m.text, m.hash, this.#table);
        if (result.table !== null) this.#table = result.table;
        if (start !== null) {
          start(result);
          start = null;
        } else if (result.table !== null) {
          if (this.#apply === null) this.#waiting = result.table;
          else this.#apply(result.table);
        }
      });
    });
    process.send!({ type: 'manifest-wanted' } satisfies ManifestWanted);
  }

  /** From now on, each later manifest's table goes to `apply` (one that came meanwhile at once). */
  follow(apply: (table: RoutingTable) => void): void {
    this.#apply = apply;
    if (this.#waiting !== null) apply(this.#waiting);
    this.#waiting = null;
  }
}
