import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { SecureContextOptions } from 'node:tls';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { CertificateError, daysLeft, readAndCheckPair, type CertificateInfo } from '../tls/certificate.js';
import { CertWatcher, pathIdentity } from '../tls/cert-watcher.js';

const POLL_MS = 250;

type HttpTls = NonNullable<Config['http']['tls']>;

/**
 * The API's certificate (http.tls): checked as turnserver's is (../tls/certificate.ts: the pair
 * parses and matches, the leaf is valid; a `ca` must parse), watched as turnserver's is
 * (../tls/cert-watcher.ts), and handed to the server with setSecureContext on a renewal: new
 * connections get the new pair, open keep-alive connections go on with theirs.
 */
export class ApiTls {
  private readonly log: Logger;
  private readonly watcher: CertWatcher;
  private current: CertificateInfo | null = null;
  private lastReloadAt: Date | null = null;
  lastError: string | null = null;
  private apply: ((options: SecureContextOptions) => void) | null = null;
  private reloading: Promise<void> = Promise.resolve();
  /** The files' identity when the first pair was read (a renewal before watch() is not missed). */
  private loadedIdentity: string | null = null;
  private readonly files: string[];

  constructor(
    private readonly tls: HttpTls,
    logger: Logger,
  ) {
    this.log = logger.child({ component: 'http' });
    this.files = [tls.cert, tls.key, ...(tls.ca ? [tls.ca] : [])];
    this.watcher = new CertWatcher(this.files, POLL_MS);
  }

  private async identity(): Promise<string> {
    return (await Promise.all(this.files.map(pathIdentity))).join('\n');
  }

  /** The checked pair (and CA) as server options; CertificateError naming the file otherwise. */
  async load(): Promise<SecureContextOptions & { info: CertificateInfo }> {
    this.loadedIdentity ??= await this.identity();
    const pair = await readAndCheckPair({ certFile: this.tls.cert, keyFile: this.tls.key });
    let ca: string | undefined;
    if (this.tls.ca) {
      const file = this.tls.ca;
      try {
        ca = await readFile(file, 'utf8');
      } catch (err) {
        throw new CertificateError(file, `cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      }
      try {
        new X509Certificate(ca);
      } catch {
        throw new CertificateError(file, 'no PEM CA certificate found (http.tls.ca)');
      }
    }
    return { cert: pair.certPem, key: pair.keyPem, ca, info: pair.info };
  }

  /** Start watching; `apply` gets every renewed pair that passed the checks. */
  async watch(first: CertificateInfo, apply: (options: SecureContextOptions) => void): Promise<void> {
    this.current = first;
    this.apply = apply;
    this.watcher.on('change', this.onChange);
    await this.watcher.start();
    // Files renewed between the first read (before the other subsystems started) and now.
    if (this.loadedIdentity !== null && (await this.identity()) !== this.loadedIdentity) this.onChange();
  }

  private readonly onChange = () => {
    this.reloading = this.reloading.then(() => this.reload());
  };

  private async reload(): Promise<void> {
    if (!this.apply) return;
    try {
      const { info, ...options } = await this.load();
      this.apply(options);
      this.current = info;
      this.lastReloadAt = new Date();
      this.lastError = null;
      this.log.info(
        {
          event: 'api-certificate-reloaded',
          subject: info.subject,
          notAfter: info.notAfter,
          fingerprint: info.fingerprint,
        },
        'HTTPS certificate renewed: served to new connections',
      );
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log.error(
        { event: 'api-certificate-rejected', reason: this.lastError },
        `the renewed HTTPS certificate fails the checks, the old one stays served: ${this.lastError}`,
      );
    }
  }

  stop(): void {
    this.apply = null;
    this.watcher.stop();
    this.watcher.off('change', this.onChange);
  }

  health(): Record<string, unknown> {
    const c = this.current;
    return {
      subject: c?.subject ?? null,
      notAfter: c?.notAfter ?? null,
      daysLeft: c ? daysLeft(c) : null,
      fingerprint: c?.fingerprint ?? null,
      clientCertificates: this.tls.ca ? 'required' : 'off',
      lastReloadAt: this.lastReloadAt?.toISOString() ?? null,
      lastError: this.lastError,
    };
  }
}
