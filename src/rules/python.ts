/**
 * python-v1 (SPEC §6): all python-v1 rules of a domain form one package
 * index, the "simple" repository API.
 *
 * - PEP 503 (HTML) and PEP 691 (JSON), chosen by `Accept`;
 * - PEP 592 `yanked`, PEP 658/714 `core-metadata`, PEP 700 `size` and
 *   `upload-time`, written only when the manifest has them;
 * - every page and its strong ETag rendered once, at compile time; a
 *   page over 8 KiB also gzipped then, for clients that accept it.
 */
import { createHash } from 'node:crypto';
import type { PythonCapture } from '../analytics/capture.ts';
import { errorAnswer, servedBody, type Answer } from '../http/answer.ts';
import { acceptsGzip, gzipVariant, type Gzipped } from '../http/content-coding.ts';
import type { ProblemSink } from '../manifest/problems.ts';
import type { PythonHash, PythonRule } from '../manifest/types.ts';
import type { RouteRequest } from '../routing/route.ts';
import { asciiHost, encodeNonPrintable, percentDecode } from '../templates/percent.ts';
import { etagMatches, formatRequested, negotiate, type PythonType } from './python-negotiation.ts';

/** One representation of a page; a large one (a Buffer) has a gzip variant. */
interface PageBody {
  readonly body: string | Buffer;
  readonly contentLength: string;
  readonly etag: string;
  readonly gzip: Gzipped | null;
}

/** A rendered page: one body per representation. */
interface Page {
  readonly bodies: Readonly<Record<PythonType, PageBody>>;
}

interface PythonFile {
  readonly rule: PythonRule;
  /** The download's answer, made once: `307` to `backend-url`. */
  readonly download: Answer;
  /** `<file>.metadata`'s (PEP 658), when core-metadata is declared: `307` to `<backend-url>.metadata`. */
  readonly metadata: Answer | null;
}

interface Project {
  readonly name: string;
  /** The capture of the project's page and its redirects (no file). */
  readonly capture: PythonCapture;
  readonly files: ReadonlyMap<string, PythonFile>;
  readonly page: Page;
}

export interface PythonIndex {
  readonly root: Page;
  readonly projects: ReadonlyMap<string, Project>;
}

/** PEP 503 normalized name. */
export function normalizeProject(name: string): string {
  return name.replace(/[-_.]+/g, '-').toLowerCase();
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** Hex digits of each hashlib digest the schema allows. */
const DIGEST_LENGTHS: Readonly<Record<string, number | undefined>> = { md5: 32, sha1: 40, sha224: 56, sha256: 64, sha384: 96, sha512: 128 };

/**
 * Warnings for a digest of the wrong length for its type (a copy cut
 * short): clients compare it with the file's and refuse the file. A
 * warning, not an error: Scarf serves such a rule, and manifests written
 * for it must load here.
 */
export function checkPythonRule(rule: PythonRule, at: string, problems: ProblemSink): void {
  for (const field of ['hash-value', 'core-metadata'] as const) {
    const h = rule[field];
    if (h == null || typeof h === 'boolean') continue;
    const expected = DIGEST_LENGTHS[h.type];
    if (expected !== undefined && h.hash.length !== expected) problems.warn(`${at}/${field}/hash`, `a ${h.type} digest has ${expected} hex digits, this one ${h.hash.length}: clients will find that the file does not match it, and refuse it`);
  }
}

function hashOf(h: PythonHash | boolean | null | undefined): Record<string, string> | null {
  if (h === true) return {};
  return h == null || h === false ? null : { [h.type]: h.hash.toLowerCase() };
}

function page(html: string, json: unknown): Page {
  const render = (type: PythonType, text: string): PageBody => {
    // Strong ETag (RFC 9110 §8.8.3) of the representation: its UTF-8 bytes and type.
    const etag = `"${createHash('sha256').update(type).update(text, 'utf8').digest('base64url').slice(0, 32)}"`;
    const { body, contentLength } = servedBody(text);
    return { body, contentLength, etag, gzip: gzipVariant(body, etag) };
  };
  const jsonText = JSON.stringify(json);
  return {
    bodies: {
      'text/html': render('text/html', html),
      'application/vnd.pypi.simple.v1+html': render('application/vnd.pypi.simple.v1+html', html),
      'application/vnd.pypi.simple.v1+json': render('application/vnd.pypi.simple.v1+json', jsonText),
    },
  };
}

function htmlPage(title: string, links: string[]): string {
  return [
    '<!DOCTYPE html>',
    '<html>',
    '  <head>',
    '    <meta name="pypi:repository-version" content="1.1">',
    `    <title>${escapeHtml(title)}</title>`,
    '  </head>',
    '  <body>',
    ...(title === 'Simple index' ? [] : [`    <h1>${escapeHtml(title)}</h1>`]),
    ...links.map((l) => `    ${l}<br>`),
    '  </body>',
    '</html>',
    '',
  ].join('\n');
}

function fileHref(project: string, rule: PythonRule): string {
  const base = `/simple/${project}/${encodeURIComponent(rule['file-name'])}`;
  const h = rule['hash-value'];
  return h == null ? base : `${base}#${h.type}=${h.hash.toLowerCase()}`;
}

function fileLink(project: string, rule: PythonRule): string {
  const attrs = [`href="${escapeHtml(fileHref(project, rule))}"`];
  if (rule['requires-python'] != null) attrs.push(`data-requires-python="${escapeHtml(rule['requires-python'])}"`);
  if (rule['gpg-sig'] != null) attrs.push(`data-gpg-sig="${rule['gpg-sig'] ? 'true' : 'false'}"`);
  if (rule.yanked != null && rule.yanked !== false) attrs.push(`data-yanked="${escapeHtml(rule.yanked === true ? '' : rule.yanked)}"`);
  const meta = hashOf(rule['core-metadata']);
  if (meta !== null) {
    const value = Object.entries(meta).map(([k, v]) => `${k}=${v}`)[0] ?? 'true';
    // PEP 714: the new name, and the old one for older installers (HTML only; see fileJson).
    attrs.push(`data-core-metadata="${escapeHtml(value)}"`, `data-dist-info-metadata="${escapeHtml(value)}"`);
  }
  return `<a ${attrs.join(' ')}>${escapeHtml(rule['file-name'])}</a>`;
}

function fileJson(project: string, rule: PythonRule): Record<string, unknown> {
  const h = rule['hash-value'];
  const file: Record<string, unknown> = {
    filename: rule['file-name'],
    url: `/simple/${project}/${encodeURIComponent(rule['file-name'])}`,
    hashes: h == null ? {} : { [h.type]: h.hash.toLowerCase() },
  };
  if (rule['requires-python'] != null) file['requires-python'] = rule['requires-python'];
  if (rule['gpg-sig'] != null) file['gpg-sig'] = rule['gpg-sig'];
  if (rule.yanked != null && rule.yanked !== false) file.yanked = rule.yanked;
  const meta = hashOf(rule['core-metadata']);
  // PEP 714: the new key only. pip 22.3 to 23.1 (Debian 12's is 23.0) fail on
  // any install from a JSON page that has `dist-info-metadata`.
  if (meta !== null) file['core-metadata'] = Object.keys(meta).length === 0 ? true : meta;
  if (rule.size != null) file.size = rule.size;
  if (rule['upload-time'] != null) file['upload-time'] = rule['upload-time'];
  return file;
}

/** All python-v1 rules of one domain → its index, pages rendered. */
export function compilePythonIndex(rules: readonly PythonRule[]): PythonIndex {
  const grouped = new Map<string, PythonRule[]>();
  for (const rule of rules) {
    const name = normalizeProject(rule['package-name']);
    let list = grouped.get(name);
    if (list === undefined) grouped.set(name, (list = []));
    list.push(rule);
  }
  const projects = new Map<string, Project>();
  for (const [name, list] of [...grouped].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const files = new Map<string, PythonFile>();
    const packageId = list[0]['package-id'];
    for (const rule of list) {
      const file = rule['file-name'];
      if (files.has(file)) continue;
      // A Location field is ASCII: node refused the answer for a character past U+00FF (a 500).
      const backendUrl = encodeNonPrintable(asciiHost(rule['backend-url']));
      const metadataUrl = `${backendUrl.split('#')[0]}.metadata`;
      files.set(file, {
        rule,
        download: download(backendUrl, { type: 'python', package: packageId, version: rule.version, file, url: backendUrl }),
        metadata:
          rule['core-metadata'] != null && rule['core-metadata'] !== false
            ? download(metadataUrl, { type: 'python', package: packageId, version: rule.version, file: `${file}.metadata`, url: metadataUrl })
            : null,
      });
    }
    const fileRules = [...files.values()].map((f) => f.rule);
    // PEP 700 (api 1.1) makes size mandatory: claim 1.1 only when every file has one.
    const v11 = fileRules.every((r) => r.size != null);
    const json: Record<string, unknown> = { meta: { 'api-version': v11 ? '1.1' : '1.0' }, name };
    if (v11) json.versions = [...new Set(fileRules.map((r) => r.version))];
    json.files = fileRules.map((r) => fileJson(name, r));
    projects.set(name, {
      name,
      capture: { type: 'python', package: packageId, version: null, file: null, url: null },
      files,
      page: page(htmlPage(`Links for ${name}`, fileRules.map((r) => fileLink(name, r))), json),
    });
  }
  const root = page(
    htmlPage('Simple index', [...projects.keys()].map((n) => `<a href="/simple/${n}/">${escapeHtml(n)}</a>`)),
    { meta: { 'api-version': '1.0' }, projects: [...projects.keys()].map((n) => ({ name: n })) },
  );
  return { root, projects };
}

/**
 * Every answer of the index may be read by a web page, as PyPI's may:
 * micropip (Pyodide, JupyterLite) reads the index from the browser.
 */
const CORS = { 'access-control-allow-origin': '*' } as const;

const PAGE_HEADERS = { vary: 'Accept', 'cache-control': 'max-age=60', ...CORS } as const;
/** A page with a gzip variant varies by Accept-Encoding too, whichever variant is sent. */
const GZIP_PAGE_HEADERS = { vary: 'Accept, Accept-Encoding', 'cache-control': 'max-age=60', ...CORS } as const;

/**
 * Hot path. The headers are built per answer on purpose: made once per
 * representation, they held 4.6 MB more for 10,000 projects (22.0 against
 * 17.4 MB of heap, a quarter more table) to save one small object spread.
 */
function servePage(p: Page, capture: PythonCapture, r: RouteRequest): Answer {
  const requested = r.query === '' ? undefined : formatRequested(r.query);
  const type = requested === undefined ? negotiate(r.accept) : requested;
  if (type === null) return errorAnswer('NOT_ACCEPTABLE', capture, { vary: 'Accept', ...CORS });
  const identity = p.bodies[type];
  const gzip = identity.gzip !== null && acceptsGzip(r.acceptEncoding) ? identity.gzip : null;
  const { body, contentLength, etag } = gzip ?? identity;
  const common = identity.gzip === null ? PAGE_HEADERS : GZIP_PAGE_HEADERS;
  if (etagMatches(r.ifNoneMatch, etag)) return { status: 304, outcome: 'not-modified', capture, headers: { ...common, etag } };
  const contentType = type === 'text/html' ? 'text/html; charset=utf-8' : type;
  const headers = gzip === null ? { ...common, etag, 'content-type': contentType } : { ...common, etag, 'content-type': contentType, 'content-encoding': 'gzip' };
  return { status: 200, outcome: 'respond', capture, headers, body, contentLength };
}

/** To the canonical URL of `path`, with the request's query kept. */
function moved(path: string, r: RouteRequest, capture: PythonCapture | null): Answer {
  return { status: 301, outcome: 'redirect', capture, headers: { location: r.query === '' ? path : `${path}?${r.query}`, ...CORS } };
}

/** The root index's capture: no project. */
const ROOT_CAPTURE: PythonCapture = { type: 'python', package: null, version: null, file: null, url: null };

/** A download: `307` to where the file is (made when the index is compiled, one per file). */
function download(url: string, capture: PythonCapture): Answer {
  return { status: 307, outcome: 'redirect', capture, headers: { location: url, ...CORS } };
}

/** Hot path. The index's answer, or null when the request is not for it. */
export function answerPython(index: PythonIndex, r: RouteRequest): Answer | null {
  if (r.method !== 'GET' && r.method !== 'HEAD') return null;
  if (r.path === '/simple') return moved('/simple/', r, null);
  if (!r.path.startsWith('/simple/')) return null;
  const rest = r.path.slice(8);
  if (rest === '') return servePage(index.root, ROOT_CAPTURE, r);
  const slash = rest.indexOf('/');
  const rawProject = slash === -1 ? rest : rest.slice(0, slash);
  const decoded = percentDecode(rawProject);
  if (decoded === null) return errorAnswer('BAD_ENCODING', null, CORS);
  const name = normalizeProject(decoded);
  const project = index.projects.get(name);
  if (project === undefined) return errorAnswer('NOT_FOUND', null, CORS);
  const { capture } = project;
  // PEP 503: non-normalized names and a missing slash go to the canonical URL.
  if (slash === -1 || rawProject !== name) {
    const tail = slash === -1 ? '/' : rest.slice(slash);
    return moved(`/simple/${name}${tail}`, r, capture);
  }
  const fileName = percentDecode(rest.slice(slash + 1));
  if (fileName === null) return errorAnswer('BAD_ENCODING', null, CORS);
  if (fileName === '') return servePage(project.page, capture, r);
  const file = project.files.get(fileName);
  if (file !== undefined) return file.download;
  if (fileName.endsWith('.metadata')) {
    const metadata = project.files.get(fileName.slice(0, -9))?.metadata;
    if (metadata != null) return metadata;
  }
  return errorAnswer('NOT_FOUND', capture, CORS);
}
