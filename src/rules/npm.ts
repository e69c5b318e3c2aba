/**
 * npm-v1 (SPEC §8a): an npm package served through the gateway.
 *
 * - `GET /<name>` (scoped: `/@scope/tool` or `/@scope%2ftool`): the package
 *   document ("packument") from the backend registry, with every
 *   `dist.tarball` pointed at this gateway and everything else (integrity
 *   included) unchanged; the abbreviated form for
 *   `Accept: application/vnd.npm.install-v1+json`.
 * - `GET /<name>/<version|tag>`: one version's document, rewritten the same way.
 * - `GET|HEAD /<name>/-/<file>.tgz`: 307 to the tarball URL the packument names.
 * - `GET /-/package/<name>/dist-tags`: the packument's dist-tags (`npm dist-tag ls`).
 * - `GET /-/ping`: `{}` (`npm ping`).
 * - Read only: other methods, and the `/-/` endpoints (login, audit, ...), get 405.
 *
 * Packuments are cached (npm-cache.ts) and revalidated with the backend.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NpmCapture, Outcome } from '../analytics/capture.ts';
import { redirect, type Answer } from '../http/answer.ts';
import { acceptsGzip } from '../http/content-coding.ts';
import { endInSlices } from '../http/send-slices.ts';
import type { NpmRule } from '../manifest/types.ts';
import type { RouteRequest, RouteServices } from '../routing/route.ts';
import { etagMatches } from './python-negotiation.ts';
import { ABBREVIATED, documentKeys, Packument } from './npm-cache.ts';

export interface NpmTarget {
  readonly packageId: string;
  /** `tool` or `@scope/tool`. */
  readonly name: string;
  /** Backend registry base URL, without trailing slash. */
  readonly registry: string;
  /** The packument's URL at the backend (scoped names encoded as `@scope%2ftool`). */
  readonly documentUrl: string;
  /** Where the full and the abbreviated document are cached (`documentKeys`), made once here, not per request. */
  readonly cacheKeys: { readonly full: string; readonly abbreviated: string };
}

export interface NpmIndex {
  readonly byName: ReadonlyMap<string, NpmTarget>;
}

export const DEFAULT_NPM_REGISTRY = 'https://registry.npmjs.org';

export function compileNpm(rule: NpmRule): NpmTarget {
  const registry = (rule.registry ?? DEFAULT_NPM_REGISTRY).replace(/\/+$/, '');
  const name = rule['package-name'];
  const documentUrl = `${registry}/${name.replace('/', '%2f')}`;
  return { packageId: rule['package-id'], name, registry, documentUrl, cacheKeys: documentKeys(documentUrl) };
}

/** A 405 names the methods there are (RFC 9110 §15.5.6): this registry is read only. */
const READ_ONLY_HEADERS = { 'content-type': 'application/json', allow: 'GET, HEAD' };
const JSON_HEADERS = { 'content-type': 'application/json' };

/** npm's own error shape. */
function npmError(status: 404 | 405 | 502, message: string, capture: NpmCapture | null = null): Answer {
  const code = status === 404 ? 'NOT_FOUND' : status === 405 ? 'READ_ONLY' : 'UPSTREAM_UNREACHABLE';
  return {
    status,
    outcome: status === 404 ? 'not-found' : status === 405 ? 'rejected' : 'upstream-error',
    capture,
    error: code,
    headers: status === 405 ? READ_ONLY_HEADERS : JSON_HEADERS,
    body: JSON.stringify({ error: message }),
  };
}

/** What npmjs.org answers to `GET /-/ping`. */
const PING: Answer = { status: 200, outcome: 'respond', capture: null, headers: JSON_HEADERS, body: '{}' };

export function npmNotFound(): Answer {
  return npmError(404, 'Not found');
}

/**
 * Splits `/<name>[/<rest>]` where name may be `@scope/tool`, `@scope%2ftool`,
 * or `%40scope%2ftool`: `encodeURIComponent` of the name, as scripts and
 * some clients write it.
 */
function splitPath(path: string): { name: string; rest: string[] } | null {
  const segments = path.slice(1).split('/');
  let name = segments.shift() ?? '';
  if (name.charCodeAt(0) === 0x25 && /^%40/i.test(name)) name = `@${name.slice(3)}`;
  if (name.startsWith('@')) {
    const encoded = /^(@[^%]+)%2f(.+)$/i.exec(name);
    if (encoded !== null) name = `${encoded[1]}/${encoded[2]}`;
    else {
      const second = segments.shift();
      if (second === undefined) return null;
      name = `${name}/${second}`;
    }
  }
  return name === '' ? null : { name: name.toLowerCase(), rest: segments };
}

/** Hot path. The npm answer, or null to let later kinds try. */
export function answerNpm(index: NpmIndex, r: RouteRequest, services: RouteServices): Answer | null {
  if (r.path.startsWith('/-/')) {
    const read = r.method === 'GET' || r.method === 'HEAD';
    // `npm dist-tag ls`: the document's dist-tags.
    const tagsOf = read && r.path.startsWith('/-/package/') && r.path.endsWith('/dist-tags') ? splitPath(r.path.slice(10, -10)) : null;
    const target = tagsOf !== null && tagsOf.rest.length === 0 ? index.byName.get(tagsOf.name) : undefined;
    if (target !== undefined) return distTagsAnswer(target, services);
    // `npm ping` (and `npm doctor`): the registry is up.
    if (read && r.path === '/-/ping') return PING;
    // Registry endpoints: login, audit, search... This gateway is read only.
    return read ? npmNotFound() : npmError(405, 'This registry is read only');
  }
  const parts = splitPath(r.path);
  if (parts === null) return null;
  const target = index.byName.get(parts.name);
  if (target === undefined) return null;
  if (r.method !== 'GET' && r.method !== 'HEAD') return npmError(405, 'This registry is read only');
  const { rest } = parts;
  if (rest.length === 0 || (rest.length === 1 && rest[0] === '')) return documentAnswer(target, r, services, null);
  if (rest.length === 1) return documentAnswer(target, r, services, decodeURIComponentSafe(rest[0]));
  // Documents know a tarball by its decoded file name.
  if (rest.length === 2 && rest[0] === '-' && rest[1].endsWith('.tgz')) return tarballAnswer(target, decodeURIComponentSafe(rest[1]), services);
  return npmNotFound();
}

/** Hot path (tarballs): most names have no escape, and decodeURIComponent costs about 120 ns even then. */
function decodeURIComponentSafe(s: string): string {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** The version in a tarball file name: `tool-1.2.3.tgz` → `1.2.3`. */
function versionOf(target: NpmTarget, file: string): string | null {
  const base = target.name.includes('/') ? target.name.slice(target.name.indexOf('/') + 1) : target.name;
  return file.startsWith(`${base}-`) ? file.slice(base.length + 1, -4) : null;
}

type StreamResult = { status: number; outcome: Outcome; capture?: NpmCapture };

/** The analytics status of a request whose client left while its document was fetched or rendered (nginx's "client closed request"). */
const CLIENT_LEFT = 499;

function respond(req: IncomingMessage, res: ServerResponse, status: number, headers: Record<string, string>, body: string | null): void {
  if (body !== null) headers['content-length'] = String(Buffer.byteLength(body));
  res.writeHead(status, headers);
  res.end(req.method === 'HEAD' || body === null ? undefined : body);
}

/** Sends a package document (it can be megabytes) in slices of the rendered copy. */
function sendDocument(req: IncomingMessage, res: ServerResponse, headers: Record<string, string>, body: Buffer, services: RouteServices): void {
  headers['content-length'] = String(body.length);
  res.writeHead(200, headers);
  if (req.method === 'HEAD') res.end();
  else endInSlices(res, body, services.sendTimeout, services.onSendTimeout);
}

function sendError(req: IncomingMessage, res: ServerResponse, a: Answer): StreamResult {
  respond(req, res, a.status, { ...a.headers }, String(a.body));
  return { status: a.status, outcome: a.outcome };
}

/**
 * An answer made from the target's package document once it is at hand;
 * until then, 499 if the client left, 502 if the backend failed with
 * nothing cached, 404 if it has no such package.
 */
function fromDocument(
  target: NpmTarget,
  services: RouteServices,
  abbreviated: boolean,
  use: (doc: Packument, req: IncomingMessage, res: ServerResponse, capture: NpmCapture) => Promise<StreamResult> | StreamResult,
): Answer {
  const capture: NpmCapture = { type: 'npm', package: target.packageId, name: target.name, version: null, url: target.documentUrl };
  return {
    status: 200,
    outcome: 'respond',
    capture,
    stream: async (req, res) => {
      const doc = await services.npm.packument(target, abbreviated);
      if (res.destroyed) return { status: CLIENT_LEFT, outcome: 'respond' };
      if (doc === null) return sendError(req, res, npmError(502, `The backend registry did not answer for ${target.name}`, capture));
      if (doc === 'not-found') return sendError(req, res, npmError(404, 'Not found', capture));
      return use(doc, req, res, capture);
    },
  };
}

function documentAnswer(target: NpmTarget, r: RouteRequest, services: RouteServices, version: string | null): Answer {
  const abbreviated = version === null && (r.accept ?? '').includes(ABBREVIATED);
  return fromDocument(target, services, abbreviated, async (doc, req, res, capture) => {
    const origin = requestOrigin(req, services);
    const rendering = version === null ? doc.render(origin) : doc.renderVersion(version, origin);
    if (rendering === null) return sendError(req, res, npmError(404, 'Not found', capture));
    const rendered = await rendering.catch(() => null);
    if (res.destroyed) return { status: CLIENT_LEFT, outcome: 'respond' };
    if (rendered === null) return sendError(req, res, npmError(502, `The document of ${target.name} could not be rendered`, capture));
    const gzip = rendered.gzip !== null && acceptsGzip(req.headers['accept-encoding']) ? rendered.gzip : null;
    const etag = gzip?.etag ?? rendered.etag;
    const vary = rendered.gzip === null ? 'Accept' : 'Accept, Accept-Encoding';
    const headers: Record<string, string> = { 'content-type': rendered.contentType, etag, vary, 'cache-control': 'max-age=60' };
    if (etagMatches(req.headers['if-none-match'], etag)) {
      respond(req, res, 304, headers, null);
      return { status: 304, outcome: 'not-modified' };
    }
    if (gzip !== null) headers['content-encoding'] = 'gzip';
    sendDocument(req, res, headers, gzip?.body ?? rendered.body, services);
    return { status: 200, outcome: 'respond' };
  });
}

/** The document's dist-tags (`GET /-/package/<name>/dist-tags`), as `{"latest": "1.2.0", ...}`. */
function distTagsAnswer(target: NpmTarget, services: RouteServices): Answer {
  return fromDocument(target, services, false, (doc, req, res) => {
    respond(req, res, 200, { ...JSON_HEADERS }, doc.distTags());
    return { status: 200, outcome: 'respond' };
  });
}

function tarballAnswer(target: NpmTarget, file: string, services: RouteServices): Answer {
  const version = versionOf(target, file);
  // The document at hand: answered at once, as a file rule's redirect is.
  const fresh = services.npm.fresh(target);
  if (fresh !== undefined) {
    const url = fresh.tarballs.get(file);
    const capture: NpmCapture = { type: 'npm', package: target.packageId, name: target.name, version, url: url ?? null };
    return url === undefined ? npmError(404, 'Not found', capture) : redirect(url, capture);
  }
  return {
    status: 307,
    outcome: 'redirect',
    capture: { type: 'npm', package: target.packageId, name: target.name, version, url: null },
    stream: async (req, res) => {
      const doc = await services.npm.packument(target, false);
      const url = doc instanceof Packument ? doc.tarballs.get(file) : undefined;
      const capture: NpmCapture = { type: 'npm', package: target.packageId, name: target.name, version, url: url ?? null };
      if (res.destroyed) return { status: CLIENT_LEFT, outcome: 'redirect', capture };
      if (doc === null) return { ...sendError(req, res, npmError(502, `The backend registry did not answer for ${target.name}`)), capture };
      if (url === undefined) return { ...sendError(req, res, npmError(404, 'Not found')), capture };
      // The redirect goes where the packument says, never to a guessed URL; with an empty body, as every redirect.
      respond(req, res, 307, { location: url }, '');
      return { status: 307, outcome: 'redirect', capture };
    },
  };
}

/**
 * The origin clients reached us on, for rewritten tarball URLs: the scheme
 * from `X-Forwarded-Proto` behind a trusted proxy (else the connection's),
 * and the request's host. npm fetches these URLs as they are written.
 */
function requestOrigin(req: IncomingMessage, services: RouteServices): string {
  const trusted = services.trustsPeer(req);
  const forwarded = trusted ? String(req.headers['x-forwarded-proto'] ?? '').split(',')[0].trim().toLowerCase() : '';
  const scheme = forwarded === 'https' || forwarded === 'http' ? forwarded : 'encrypted' in req.socket ? 'https' : 'http';
  const hostHeader = (trusted ? String(req.headers['x-forwarded-host'] ?? '').split(',')[0].trim() : '') || (req.headers.host ?? '');
  const host = /^[A-Za-z0-9.\-[\]:]+$/.test(hostHeader) ? hostHeader.toLowerCase() : 'invalid.host';
  return `${scheme}://${host}`;
}
