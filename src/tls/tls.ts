import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { StartupError, type Subsystem, type SubsystemHealth } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import { turnPaths } from '../supervisor/render-conf.js';
import { probeHost } from '../supervisor/stun-probe.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { CertificateError, daysLeft, readAndCheckPair, type CertificateInfo, type CheckedPair } from './certificate.js';
import { CertWatcher } from './cert-watcher.js';
import { tlsStunProbe } from './tls-probe.js';

/** How often the certificate paths are polled (two stat calls each time). */
const POLL_MS = 250;
/** After SIGUSR2, how long turnserver gets to serve the new certificate. */
const CONFIRM_TIMEOUT_MS = 5000;
const CONFIRM_POLL_MS = 50;
/** How often an expiring certificate is said again (a webhook takes it once a day). */
const EXPIRY_CHECK_MS = 3_600_000;

export type ReloadResult = 'ok' | 'rejected' | 'failed';

export interface TlsEvents {
  reloaded: [CertificateInfo];
  /** The served certificate expires in fewer than warnDays days: said at start and every hour after. */
  expiring: [CertificateInfo & { daysLeft: number; warnDays: number }];
  'reload-failed': [{ result: Exclude<ReloadResult, 'ok'>; reason: string }];
}

export interface TlsDeps {
  /** Send SIGUSR2 to the running turnserver (never SIGUSR1: it kills 4.6.1); false when none runs. */
  signalReload(): boolean;
  /** A probe's TLS connection came from this `ip:port`: its coturn session is the monitor's own (not usage). */
  noteProbe?(address: string): void;
}

/** A failed reload: the old certificate is still served. */
export class TlsReloadError extends Error {
  constructor(
    readonly result: Exclude<ReloadResult, 'ok'>,
    message: string,
  ) {
    super(message);
    this.name = 'TlsReloadError';
  }
}

/**
 * TURN over TLS: checks the certificate pair before turnserver may use it, watches the files and
 * has turnserver reload a renewed pair with SIGUSR2 (allocations untouched), then confirms by a
 * handshake that the new certificate is served. turnserver reads copies in dataDir of the last
 * pair that passed, so a pair that fails the checks is never loaded, not even by a restart.
 */
export class Tls extends EventEmitter<TlsEvents> implements Subsystem {
  readonly name = 'tls';
  readonly enabled: boolean;
  private readonly log: Logger;
  private readonly watcher: CertWatcher | null = null;
  private readonly host: string;
  /** The pair turnserver serves (or will load at its next start). */
  private current: CertificateInfo | null = null;
  private lastReloadAt: Date | null = null;
  private lastError: string | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private running = false;
  private expiryTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: Config,
    logger: Logger,
    private readonly deps: TlsDeps,
  ) {
    super();
    this.log = logger.child({ component: 'tls' });
    const { cert, key } = config.turnserver.tls;
    this.enabled = cert !== null && key !== null;
    this.host = probeHost(config.turnserver.listeningIp);
    if (this.enabled) this.watcher = new CertWatcher([cert!, key!], POLL_MS);
  }

  private readonly onFilesChanged = () => void this.reload('files-changed').catch(() => undefined);

  private check(): Promise<CheckedPair> {
    const t = this.config.turnserver.tls;
    return readAndCheckPair({ certFile: t.cert!, keyFile: t.key!, serverName: t.serverName });
  }

  /** Put the checked texts where the rendered conf points turnserver (key first, each atomic). */
  private async install(pair: CheckedPair): Promise<void> {
    const paths = turnPaths(this.config);
    await mkdir(this.config.dataDir, { recursive: true });
    await writeFileAtomic(paths.tlsKey, pair.keyPem, 0o600);
    await writeFileAtomic(paths.tlsCert, pair.certPem, 0o600);
  }

  /** Check the pair (a bad one is a start-up error, exit 2) and watch the files. */
  async start(): Promise<void> {
    if (!this.enabled || this.running) return;
    let pair: CheckedPair;
    try {
      pair = await this.check();
    } catch (err) {
      if (err instanceof CertificateError) throw new StartupError(err.message, 2);
      throw err;
    }
    await this.install(pair);
    this.current = pair.info;
    this.running = true;
    this.watcher!.on('change', this.onFilesChanged);
    await this.watcher!.start();
    const { subject, notAfter, fingerprint } = this.current;
    this.log.info(
      { event: 'certificate', subject, notAfter, fingerprint, daysLeft: daysLeft(this.current) },
      'TLS certificate checked',
    );
    // After start() resolved, so whoever listens was wired (the root) before it fires.
    setImmediate(() => this.checkExpiry());
    this.expiryTimer = setInterval(() => this.checkExpiry(), EXPIRY_CHECK_MS);
    this.expiryTimer.unref();
  }

  private checkExpiry(): void {
    const c = this.current;
    if (!this.running || !c) return;
    const left = daysLeft(c);
    const { warnDays } = this.config.turnserver.tls;
    if (left < warnDays) this.emit('expiring', { ...c, daysLeft: left, warnDays });
  }

  stop(): Promise<void> {
    this.running = false;
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.expiryTimer = null;
    this.watcher?.stop();
    this.watcher?.off('change', this.onFilesChanged);
    return this.queue.then(
      () => undefined,
      () => undefined,
    );
  }

  /** Check the files, SIGUSR2, confirm the new certificate is served. Serialized. */
  reload(trigger: string): Promise<CertificateInfo> {
    const next = this.queue.then(() => this.reloadOnce(trigger));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async reloadOnce(trigger: string): Promise<CertificateInfo> {
    if (!this.enabled) throw new TlsReloadError('rejected', 'TLS is off (turnserver.tls.cert/key not set)');
    const started = Date.now();
    let pair: CheckedPair;
    try {
      pair = await this.check();
    } catch (err) {
      await this.watcher?.markSeen();
      throw this.fail(
        'rejected',
        err instanceof CertificateError ? err.message : (err as Error).message,
        trigger,
        'the new pair fails the checks: the old certificate stays served',
      );
    }
    await this.watcher?.markSeen();
    const info = pair.info;
    try {
      await this.install(pair);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw this.fail(
        'failed',
        `cannot write the checked pair into ${this.config.dataDir} (${code})`,
        trigger,
        'reload failed',
      );
    }
    if (!this.deps.signalReload()) {
      // turnserver is between runs: its next start reads the new files anyway.
      this.accept(info, trigger, started, 'turnserver not running: the new pair is loaded at its start');
      return info;
    }
    const port = this.config.turnserver.tls.port;
    const deadline = started + CONFIRM_TIMEOUT_MS;
    let served: string | null = null;
    while (Date.now() < deadline && this.running) {
      const timeout = Math.min(1000, Math.max(50, deadline - Date.now()));
      served = (await tlsStunProbe(this.host, port, timeout, this.deps.noteProbe)).fingerprint;
      if (served === info.fingerprint) {
        this.accept(info, trigger, started, 'new TLS certificate served');
        return info;
      }
      await new Promise((r) => setTimeout(r, CONFIRM_POLL_MS));
    }
    throw this.fail(
      'failed',
      `turnserver does not serve the new certificate ${CONFIRM_TIMEOUT_MS} ms after SIGUSR2 (serves ${served ?? 'nothing'})`,
      trigger,
      'reload not confirmed',
    );
  }

  /**
   * A (re)started turnserver read the copies when it started: if a renewal was installed while it
   * was starting (too early for SIGUSR2), have it reload now.
   */
  async onTurnserverReady(): Promise<void> {
    if (!this.running || !this.current) return;
    const { fingerprint } = await tlsStunProbe(this.host, this.config.turnserver.tls.port, 1000, this.deps.noteProbe);
    if (fingerprint !== null && fingerprint !== this.current.fingerprint && this.running) {
      this.log.warn(
        { event: 'stale-certificate', served: fingerprint, expected: this.current.fingerprint },
        'turnserver serves an older certificate: reloading',
      );
      await this.reload('turnserver-ready').catch(() => undefined);
    }
  }

  private accept(info: CertificateInfo, trigger: string, started: number, msg: string): void {
    this.current = info;
    this.lastReloadAt = new Date();
    this.lastError = null;
    const { subject, notAfter, fingerprint } = info;
    this.log.info({ event: 'reloaded', trigger, subject, notAfter, fingerprint, ms: Date.now() - started }, msg);
    this.emit('reloaded', info);
  }

  private fail(result: Exclude<ReloadResult, 'ok'>, reason: string, trigger: string, msg: string): TlsReloadError {
    this.lastError = reason;
    this.log.error({ event: 'reload-failed', result, trigger, reason }, `${msg}: ${reason}`);
    this.emit('reload-failed', { result, reason });
    return new TlsReloadError(result, reason);
  }

  /** The pair turnserver serves; null when TLS is off. */
  get certificate(): CertificateInfo | null {
    return this.current;
  }

  health(): SubsystemHealth {
    if (!this.enabled) return { status: 'disabled' };
    const c = this.current;
    const left = c ? daysLeft(c) : null;
    const { port, warnDays } = this.config.turnserver.tls;
    const expiring = left !== null && left < warnDays;
    return {
      status: this.lastError || expiring ? 'degraded' : 'ok',
      port,
      subject: c?.subject ?? null,
      names: c?.names ?? [],
      notAfter: c?.notAfter ?? null,
      daysLeft: left,
      fingerprint: c?.fingerprint ?? null,
      lastReloadAt: this.lastReloadAt?.toISOString() ?? null,
      lastError: this.lastError,
      warning: expiring ? `the certificate expires in ${left} days (warnDays ${warnDays})` : null,
    };
  }
}
