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
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';

export interface Certificate {
  /** The PEM chain, leaf first, as `--tls-cert` holds it. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** The leaf's validity. */
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The leaf's subject alternative names (or subject), for the log. */
  readonly names: string;
}

function read(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new Error(`${flag} ${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/** Reads a certificate chain and its private key; throws an Error naming the flag, the file and the problem. */
export function loadCertificate(certFile: string, keyFile: string): Certificate {
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
  try {
    // What the listener will do with them: anything OpenSSL refuses (a broken certificate later in the chain) is found now.
    createSecureContext({ cert, key });
  } catch (e) {
    throw new Error(`--tls-cert ${certFile}: ${(e as Error).message}`);
  }
  return { cert, key, notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo), names: leaf.subjectAltName ?? leaf.subject };
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
function signature(files: readonly string[]): string {
  return files
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
  readonly #files: readonly [string, string];
  readonly #events: CertificateEvents;
  readonly #timer: NodeJS.Timeout;
  #seen: string;
  /** The pair as `#seen` failed once, untold. */
  #failedOnce = false;

  constructor(certFile: string, keyFile: string, pollMs: number, events: CertificateEvents) {
    this.#files = [certFile, keyFile];
    this.#events = events;
    this.#seen = signature(this.#files);
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
      this.#events.loaded(loadCertificate(...this.#files));
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
  readonly certFile: string;
  readonly keyFile: string;
  /** How often the two files are looked at, in ms. */
  readonly pollMs: number;
  /** Time a handshake may take, in ms (0: node's 120 s). */
  readonly handshakeTimeout: number;
}

/** An HTTPS server whose certificate follows its files. */
export interface TlsListener {
  readonly server: Server;
  /** The certificate new connections get. */
  readonly certificate: Certificate;
  /** Handshakes that failed so far. */
  readonly handshakeErrors: number;
  /** Reads the files again, changed or not (SIGHUP). */
  reload(): void;
  close(): void;
}

/** Throws an Error naming the flag, the file and the problem when the pair cannot serve. */
export function createTlsListener(
  http: ServerOptions,
  tls: TlsListenerOptions,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  log: Logger,
): TlsListener {
  let certificate = loadCertificate(tls.certFile, tls.keyFile);
  let handshakeErrors = 0;
  const server = createServer(
    { ...http, cert: certificate.cert, key: certificate.key, ALPNProtocols: ['http/1.1'], handshakeTimeout: tls.handshakeTimeout },
    onRequest,
  );
  logCertificate(log, certificate, 'certificate loaded');
  // A failed handshake is no request: no answer, no line, only counted. (node's https passes it on as a
  // clientError, whose handler would answer a 400 into a connection that never spoke HTTP, and keep it open.)
  server.removeAllListeners('tlsClientError');
  server.on('tlsClientError', (e: NodeJS.ErrnoException, socket: Socket) => {
    handshakeErrors++;
    log.debug({ code: e.code, peer: socket.remoteAddress }, 'TLS handshake failed');
    socket.destroy();
  });
  const watcher = new CertificateWatcher(tls.certFile, tls.keyFile, tls.pollMs, {
    loaded(next) {
      server.setSecureContext({ cert: next.cert, key: next.key });
      certificate = next;
      logCertificate(log, next, 'certificate reloaded: new connections get it');
    },
    rejected: (e) => log.error({ error: e.message }, 'certificate not reloaded; the one in use keeps serving'),
  });
  return {
    server,
    get certificate() {
      return certificate;
    },
    get handshakeErrors() {
      return handshakeErrors;
    },
    reload: () => watcher.check(true),
    close: () => watcher.close(),
  };
}
