/**
 * The public listener over TLS (`--tls-cert`, `--tls-key`): its certificate
 * is read and checked before it is used, and read again when either file
 * changes, so that a renewal (certbot replacing its `live/` links, a
 * Kubernetes secret update) takes effect without a restart. A pair that
 * fails its checks is logged and the one in use keeps serving, as with the
 * manifest.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerOptions, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { CertificateFiles } from '../options.ts';

export interface Certificate {
  /** The PEM chain, leaf first, as `--tls-cert` holds it. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The leaf's validity. */
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The leaf's subject alternative names (or subject), for the log. */
  readonly names: string;
  /** The host names it serves: its DNS alternative names, in lower case (`*.example.com` for one label). */
  readonly hosts: readonly string[];
  /** The context its handshakes get, made when it was checked. */
  readonly context: SecureContext;
}

function read(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`${flag} ${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Reads a certificate chain and its private key; throws an Error naming the flag, the file and the problem. */
export function loadCertificate({ cert: certFile, key: keyFile }: CertificateFiles): Certificate {
  const cert = read('--tls-cert', certFile);
  const key = read('--tls-key', keyFile);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch {
    throw new Error(`--tls-cert ${certFile}: not a PEM certificate`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    throw new Error(`--tls-key ${keyFile}: not a PEM private key (one protected by a passphrase is not read)`);
  }
  if (!leaf.checkPrivateKey(privateKey)) throw new Error(`--tls-key ${keyFile}: not the key of the certificate in ${certFile}`);
  let context: SecureContext;
  try {
    // What the listener will do with them: anything OpenSSL refuses (a broken certificate later in the chain) is found now.
    context = createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`--tls-cert ${certFile}: ${(e as Error).message}`);
  }
  const names = leaf.subjectAltName ?? leaf.subject;
  const hosts = (leaf.subjectAltName ?? '').split(', ').filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4).toLowerCase());
  return { cert, key, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), names, hosts, context };
}

/** Whether a certificate for `host` (a DNS name or a wildcard `*.suffix`, RFC 6125 §6.4.3) serves `name`. */
export function servesName(host: string, name: string): boolean {
  if (!host.startsWith('*.')) return host === name;
  const dot = name.indexOf('.');
  return dot > 0 && name.slice(dot + 1) === host.slice(2);
}

/** Days of validity left under which a loaded certificate is warned about (Let's Encrypt's renew at 30). */
const WARN_DAYS = 14;
const DAY_MS = 86_400_000;

/** Logs a certificate put in use (`msg`), and warns when clients will refuse it soon or already do. */
function logCertificate(log: Logger, certificate: Certificate, msg: string): void {
  const { names, notBefore, notAfter } = certificate;
  log.info({ names, notAfter: notAfter.toISOString() }, msg);
  const now = Date.now();
  const at = { names, notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() };
  if (notAfter.getTime() <= now) log.warn(at, 'certificate has expired: clients refuse it');
  else if (notBefore.getTime() > now) log.warn(at, 'certificate is not valid yet: clients refuse it');
  else if (notAfter.getTime() - now < WARN_DAYS * DAY_MS) log.warn({ ...at, daysLeft: Math.floor((notAfter.getTime() - now) / DAY_MS) }, 'certificate expires soon');
}

/** What `stat` says of the two files: a change in either means they are read again. */
function signature(files: CertificateFiles): string {
  return [files.cert, files.key]
    .map((file) => {
      try {
        const s = statSync(file);
        return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch (e) {
        return (e as NodeJS.ErrnoException).code ?? 'unreadable';
      }
    })
    .join('|');
}

export interface CertificateEvents {
  /** A new pair passed its checks and is in use. */
  loaded(certificate: Certificate): void;
  /** The files changed but the pair failed its checks twice; the one in use stays. Told once per state of the files. */
  rejected(error: Error): void;
}

/**
 * Looks at the two files every `pollMs` (two stats) and on `check(true)`
 * (SIGHUP). Files changed between two looks are read again. A renewal
 * writes its two files one after the other, so a pair that fails is
 * tried once more at the next look before it is told; after that, when
 * either file changes again.
 */
export class CertificateWatcher {
  readonly #files: CertificateFiles;
  readonly #events: CertificateEvents;
  readonly #timer: NodeJS.Timeout;
  #seen: string;
  /** The pair as `#seen` failed once, untold. */
  #failedOnce = false;

  constructor(files: CertificateFiles, pollMs: number, events: CertificateEvents) {
    this.#files = files;
    this.#events = events;
    this.#seen = signature(files);
    this.#timer = setInterval(() => this.check(), pollMs);
    this.#timer.unref();
  }

  /** Reads the pair again if either file changed since the last look, or whatever they say when `force`. */
  check(force = false): void {
    const now = signature(this.#files);
    if (now === this.#seen && !force && !this.#failedOnce) return;
    const again = now === this.#seen && this.#failedOnce;
    this.#seen = now;
    this.#failedOnce = false;
    try {
      this.#events.loaded(loadCertificate(this.#files));
    } catch (e) {
      if (again || force) this.#events.rejected(e as Error);
      else this.#failedOnce = true;
    }
  }

  close(): void {
    clearInterval(this.#timer);
  }
}

export interface TlsListenerOptions {
  /** The pairs of files, in `--tls-cert` order: the first serves the names no other lists, and clients that send none. */
  readonly certificates: readonly CertificateFiles[];
  /** How often the files are looked at, in ms. */
  readonly pollMs: number;
  /** Time a handshake may take, in ms (0: node's 120 s). */
  readonly handshakeTimeout: number;
}

/** An HTTPS server whose certificates follow their files. */
export interface TlsListener {
  readonly server: Server;
  /** The earliest end of validity of the certificates in use. */
  readonly expiry: Date;
  /** Handshakes that failed so far. */
  readonly handshakeErrors: number;
  /** Reads the files again, changed or not (SIGHUP). */
  reload(): void;
  close(): void;
}

const PLAIN_HTTP_MESSAGE = 'This port speaks HTTPS: use https:// in the URL.\n';
/** The answer to plain HTTP sent to the TLS listener. */
const PLAIN_HTTP_ANSWER =
  'HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n' +
  `content-length: ${PLAIN_HTTP_MESSAGE.length}\r\nconnection: close\r\n\r\n${PLAIN_HTTP_MESSAGE}`;

/** Throws an Error naming the flag, the file and the problem when a pair cannot serve. */
export function createTlsListener(
  http: ServerOptions,
  tls: TlsListenerOptions,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  log: Logger,
): TlsListener {
  /** The certificates in use, in `--tls-cert` order. */
  const served: Certificate[] = tls.certificates.map(loadCertificate);
  let handshakeErrors = 0;
  /** Hot path of a handshake: the context of the first certificate that lists the name; the first's (the server's own) for none. */
  const byName = (name: string, done: (e: Error | null, context?: SecureContext) => void) => {
    const host = name.toLowerCase();
    const found = served.find((c) => c.hosts.some((h) => servesName(h, host)));
    done(null, found === undefined || found === served[0] ? undefined : found.context);
  };
  const first = served[0];
  const server = createServer(
    {
      ...http,
      cert: first.cert,
      key: first.key,
      ALPNProtocols: ['http/1.1'],
      handshakeTimeout: tls.handshakeTimeout,
      ...(served.length > 1 ? { SNICallback: byName } : {}),
    },
    onRequest,
  );
  for (const c of served) logCertificate(log, c, 'certificate loaded');
  // A failed handshake is no request: no analytics line, only counted. (node's https passes it on as a
  // clientError, whose handler would answer a 400 through TLS into a connection that never spoke it, and keep it open.)
  server.removeAllListeners('tlsClientError');
  server.on('tlsClientError', (e: NodeJS.ErrnoException, socket: Socket) => {
    handshakeErrors++;
    log.debug({ code: e.code, peer: socket.remoteAddress }, 'TLS handshake failed');
    // Plain HTTP, which OpenSSL recognizes: told so in plain HTTP on the TCP connection under TLS, as nginx does.
    const tcp = (socket as Socket & { _parent?: Socket })._parent;
    if (e.code === 'ERR_SSL_HTTP_REQUEST' && tcp?.writable === true) tcp.end(PLAIN_HTTP_ANSWER, () => socket.destroy());
    else socket.destroy();
  });
  const watchers = tls.certificates.map(
    (files, i) =>
      new CertificateWatcher(files, tls.pollMs, {
        loaded(next) {
          if (i === 0) server.setSecureContext({ cert: next.cert, key: next.key });
          served[i] = next;
          logCertificate(log, next, 'certificate reloaded: new connections get it');
        },
        rejected: (e) => log.error({ error: e.message }, 'certificate not reloaded; the one in use keeps serving'),
      }),
  );
  return {
    server,
    get expiry() {
      return new Date(Math.min(...served.map((c) => c.notAfter.getTime())));
    },
    get handshakeErrors() {
      return handshakeErrors;
    },
    reload: () => {
      for (const w of watchers) w.check(true);
    },
    close: () => {
      for (const w of watchers) w.close();
    },
  };
}
