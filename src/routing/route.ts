/**
 * One lookup in a domain's table, kind by kind in the order of SPEC §3;
 * the first rule that claims the request answers it.
 */
import { errorAnswer, type Answer } from '../http/answer.ts';
import type { DomainTable } from './routing-table.ts';
import { answerFileV1 } from '../rules/file-v1.ts';
import { matchFileV2 } from '../rules/file-v2.ts';
import { answerCatchAll } from '../rules/catch-all.ts';
import { answerTelemetry } from '../rules/telemetry.ts';
import { answerPixel } from '../rules/pixel.ts';
import { dockerNameUnknown, isDockerPath } from '../rules/docker-errors.ts';
import { answerDocker } from '../rules/docker.ts';
import { answerPython } from '../rules/python.ts';
import { answerNpm, npmNotFound } from '../rules/npm.ts';
import { upperTriplets } from '../templates/percent.ts';
import type { NpmDocuments } from '../rules/npm-cache.ts';
import type { IncomingMessage } from 'node:http';
import type { AgentPredicate } from '../proxy/user-agents.ts';
import type { RegistryProxy } from '../proxy/registry-proxy.ts';

/** What the router needs to know about a request. */
export interface RouteRequest {
  readonly method: string;
  /** Raw path, as sent, without the query. */
  readonly path: string;
  /** Raw query, without `?` ('' when absent). */
  readonly query: string;
  readonly authorization: string | undefined;
  readonly userAgent: string | undefined;
  readonly accept: string | undefined;
  readonly acceptEncoding: string | undefined;
  readonly ifNoneMatch: string | undefined;
}

/** Process-wide services some answers need (built once at start-up). */
export interface RouteServices {
  /** True for user agents known to follow registry redirects (SPEC §4). */
  readonly followsRegistryRedirects: AgentPredicate;
  readonly registryProxy: RegistryProxy;
  readonly npm: NpmDocuments;
  /** True when the request's peer is a trusted proxy (SPEC §2). */
  readonly trustsPeer: (req: IncomingMessage) => boolean;
  /** Time a write of a large answer may wait for the client, in ms (`--send-timeout`). */
  readonly sendTimeout: number;
  /** Called when a client is cut off for it (metrics). */
  readonly onSendTimeout: () => void;
}

/** Hot path: hash lookups and one trie walk; nothing is compiled here. */
export function route(d: DomainTable, r: RouteRequest, services: RouteServices): Answer {
  if (d.docker !== null) {
    const a = answerDocker(d.docker, r, services);
    if (a !== null) return a;
  }
  const read = r.method === 'GET' || r.method === 'HEAD';
  if (d.pixels !== null && read) {
    const pixel = d.pixels.get(r.path);
    if (pixel !== undefined) return answerPixel(pixel, r.query);
  }
  if (d.telemetry !== null && r.method === 'POST') {
    const t = d.telemetry.get(r.path);
    if (t !== undefined) return answerTelemetry(t, r.authorization);
  }
  if (d.fileV1 !== null) {
    // Literals are compiled with upper-case triplets: curl's `%d1` matches as a browser's `%D1`.
    const m = d.fileV1.match(upperTriplets(r.path), upperTriplets(r.query));
    if (m !== null) return answerFileV1(m.rule, m.values, m.mergeQuery);
  }
  if (d.fileV2 !== null) {
    const a = matchFileV2(d.fileV2, r.path, r.query);
    if (a !== null) return a;
  }
  if (d.python !== null) {
    const a = answerPython(d.python, r);
    if (a !== null) return a;
  }
  if (d.npm !== null) {
    const a = answerNpm(d.npm, r, services);
    if (a !== null) return a;
  }
  if (d.catchAll !== null) return answerCatchAll(d.catchAll, r.path, r.query);
  return d.npm !== null && !isDockerPath(r.path) ? npmNotFound() : notFound(r.path);
}

/** Nothing matched: the registry's error body under /v2 (SPEC §4), else ours. */
export function notFound(path: string): Answer {
  return isDockerPath(path) ? dockerNameUnknown() : errorAnswer('NOT_FOUND');
}
