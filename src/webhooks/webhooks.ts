import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Registry } from 'prom-client';
import { packageVersion } from '../config/package.js';
import type { Config } from '../config/schema.js';
import { readWebhookSecretFile } from '../config/secret-files.js';
import { endpointName, type WebhookEventType } from '../config/webhooks.js';
import { StartupError, type Subsystem, type SubsystemHealth } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import { Backoff } from '../process/backoff.js';
import { workerEntry } from '../util/worker-entry.js';
import { FAILING_WARN_MS } from './dispatcher.js';
import { registerWebhookMetrics, type WebhookMetrics } from './metrics.js';
import { WebhookOutbox, type RecordOptions } from './outbox.js';
import type { EndpointFigures, FromThread, ThreadConfig, ThreadEndpoint, ToThread } from './protocol.js';

const threadEntry = workerEntry(import.meta.url, 'delivery-thread');
/** How often the delivery thread looks for new events unless told otherwise (WebhooksDeps.pollMs). */
export const DEFAULT_POLL_MS = 100;
/** How often the event loop's utilization is looked at, and above what it counts as saturated. */
const BUSY_SAMPLE_MS = 50;
const BUSY_UTILIZATION = 0.8;
/** A graceful stop keeps delivering (the events of the stop itself) for at most this long. */
const STOP_DRAIN_MS = 2000;
/** Events that could not be written (disk full) wait in memory for another try, this many at most. */
const MAX_UNWRITTEN = 1000;

export interface WebhooksDeps {
  config: Config;
  logger: Logger;
  registry: Registry;
  /** This host's name in every event (`export.postgres.hostId`, else the discovery node name). */
  hostId: string;
  now?: () => number;
  /** How often the delivery thread looks for new events (default DEFAULT_POLL_MS). */
  pollMs?: number;
}

/**
 * Webhooks: events about this host to the application's endpoints, signed (Standard Webhooks),
 * durable (an outbox in usage.db, written with the record change that caused it) and retried.
 * Delivery runs on a thread of its own (delivery-thread.ts); this side installs the outbox,
 * writes the events that belong to no record, and shows health and metrics.
 */
export class Webhooks implements Subsystem {
  readonly name = 'webhooks';
  private readonly log: Logger;
  private outbox: WebhookOutbox | null = null;
  private worker: Worker | null = null;
  private threadConfig: ThreadConfig | null = null;
  private figures: EndpointFigures[] = [];
  private readonly metrics: WebhookMetrics;
  private stopping: Promise<void> | null = null;
  private readonly restartBackoff = new Backoff(1000, 30_000);
  private threadError: string | null = null;
  private unwritten: { type: WebhookEventType; data: Record<string, unknown>; opts: RecordOptions }[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private busyTimer: NodeJS.Timeout | null = null;

  constructor(private readonly deps: WebhooksDeps) {
    this.log = deps.logger.child({ component: 'webhooks' });
    this.now = deps.now ?? Date.now;
    this.metrics = registerWebhookMetrics(deps.registry, () => this.figures);
  }

  get enabled(): boolean {
    return this.deps.config.webhooks.endpoints.length > 0;
  }

  /** Each endpoint with its secret, read (secretFile) and checked once; exit 2 naming the key. */
  private endpoints(ids: Map<string, number>): ThreadEndpoint[] {
    return this.deps.config.webhooks.endpoints.map((e, i) => {
      let secret = e.secret;
      if (secret === null) {
        // loadConfig reads secret files; a Config built without it (tests, embedding) is read here.
        try {
          const read = readWebhookSecretFile(e.secretFile!, i);
          if (read.warning) this.log.warn({ event: 'secret-file-mode' }, read.warning);
          secret = read.text;
        } catch (err) {
          throw new StartupError((err as Error).message, 2);
        }
      }
      const name = endpointName(e.url);
      return { id: ids.get(name) ?? -1, name, url: e.url, secret, timeoutMs: e.timeoutMs };
    });
  }

  async start(): Promise<void> {
    const { config } = this.deps;
    const file = config.stats.dbFile;
    if (!this.enabled) {
      WebhookOutbox.uninstall(file);
      return;
    }
    this.endpoints(new Map()); // secrets checked before anything is written
    const w = config.webhooks;
    this.outbox = new WebhookOutbox(
      file,
      this.deps.hostId,
      w.endpoints.map((e) => ({ name: endpointName(e.url), events: e.events })),
    );
    this.threadConfig = {
      file,
      hostId: this.deps.hostId,
      endpoints: this.endpoints(this.outbox.endpointIds),
      maxAgeMs: w.maxAgeHours * 3_600_000,
      retentionMs: w.retentionDays * 86_400_000,
      userAgent: `turn-monitor/${packageVersion}`,
      pollMs: this.deps.pollMs ?? DEFAULT_POLL_MS,
    };
    this.figures = this.threadConfig.endpoints.map((e) => ({
      name: e.name,
      pending: 0,
      failed: 0,
      oldestPendingAt: null,
      lastError: null,
      lastDeliveredAt: null,
      failingSince: null,
    }));
    await this.spawn();
    this.retryUnwritten();
    this.watchEventLoop();
    this.log.info(
      { event: 'webhooks-started', endpoints: this.figures.map((f) => f.name), hostId: this.deps.hostId },
      'webhooks on',
    );
  }

  private spawn(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(threadEntry.code, { eval: threadEntry.eval, workerData: this.threadConfig });
      this.worker = worker;
      worker.on('message', (m: FromThread) => {
        if (m.type === 'ready') {
          this.threadError = null;
          resolve();
        } else if (m.type === 'failed') reject(new StartupError(`webhooks: cannot open the outbox: ${m.message}`));
        else this.onMessage(m);
      });
      worker.on('error', (err) => {
        this.threadError = err.message;
        this.log.error({ event: 'webhook-thread-failed', err: err.message }, 'webhook delivery thread failed');
      });
      worker.on('exit', () => {
        if (this.worker !== worker) return;
        this.worker = null;
        reject(new Error('the webhook delivery thread exited'));
        if (this.stopping) return;
        this.threadError ??= 'the delivery thread exited';
        const delay = this.restartBackoff.next();
        setTimeout(() => {
          if (!this.stopping) this.spawn().catch(() => undefined);
        }, delay).unref();
      });
    });
  }

  /**
   * Tell the delivery thread when this event loop is saturated (an ingest burst): it holds
   * deliveries back meanwhile (a second at most), so they take no CPU from ingest.
   */
  private watchEventLoop(): void {
    let last = performance.eventLoopUtilization();
    let busy = false;
    this.busyTimer = setInterval(() => {
      const now = performance.eventLoopUtilization();
      const u = performance.eventLoopUtilization(now, last).utilization;
      last = now;
      if (u > BUSY_UTILIZATION === busy) return;
      busy = !busy;
      this.tell({ type: 'busy', busy });
    }, BUSY_SAMPLE_MS);
    this.busyTimer.unref();
  }

  private onMessage(m: FromThread): void {
    if (m.type === 'status') this.figures = m.endpoints;
    else if (m.type === 'counts') {
      for (const [endpoint, result, n] of m.counts) this.metrics.counted(endpoint, result, n);
      for (const s of m.latencies) this.metrics.delivered(s);
      this.restartBackoff.reset();
    } else if (m.type === 'log') this.log[m.level](m.fields, m.msg);
  }

  /**
   * Write an event that belongs to no record (host, turnserver, certificate, client) now; the
   * thread is told at once. Returns its id (null: no endpoint takes it, or it exists already).
   */
  record(type: WebhookEventType, data: Record<string, unknown>, opts: RecordOptions = {}): string | null {
    if (!this.enabled || this.stopping) return null;
    const stamped = { ...opts, at: opts.at ?? this.now() };
    if (!this.outbox) {
      // Before start (a subsystem started earlier, e.g. TLS): written once the outbox is there.
      if (this.unwritten.length < MAX_UNWRITTEN) this.unwritten.push({ type, data, opts: stamped });
      return null;
    }
    try {
      const id = this.outbox.record(type, data, stamped);
      if (id) this.tell({ type: 'poke' });
      return id;
    } catch (err) {
      this.log.error(
        { event: 'webhook-record-failed', type, err: (err as Error).message },
        'could not write a webhook event: retrying',
      );
      if (this.unwritten.length < MAX_UNWRITTEN) this.unwritten.push({ type, data, opts: stamped });
      this.retryTimer ??= setTimeout(() => this.retryUnwritten(), 1000);
      return null;
    }
  }

  private retryUnwritten(): void {
    this.retryTimer = null;
    const waiting = this.unwritten;
    this.unwritten = [];
    for (const e of waiting) this.record(e.type, e.data, e.opts);
  }

  private tell(m: ToThread): void {
    this.worker?.postMessage(m);
  }

  private async shutdown(drainMs: number): Promise<void> {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.busyTimer) clearInterval(this.busyTimer);
    const worker = this.worker;
    if (worker) {
      const done = new Promise<void>((resolve) => {
        worker.on('message', (m: FromThread) => m.type === 'stopped' && resolve());
        worker.once('exit', () => resolve());
      });
      worker.postMessage({ type: 'stop', drainMs } satisfies ToThread);
      const timer = setTimeout(() => void worker.terminate(), drainMs + 2000);
      await done;
      clearTimeout(timer);
      this.worker = null;
      await worker.terminate();
    }
    this.outbox?.close();
    this.outbox = null;
  }

  /** Graceful: up to 2 s more of deliveries (the closes of the stop itself), the rest at the next start. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown(STOP_DRAIN_MS);
    return this.stopping;
  }

  /** Handover: stop at once; the next monitor sends what waits (in flight: sent again, same id). */
  release(): Promise<void> {
    this.stopping ??= this.shutdown(0);
    return this.stopping;
  }

  health(): SubsystemHealth {
    if (!this.enabled) return { status: 'disabled' };
    const now = this.now();
    const failing = this.figures.some((f) => f.failingSince !== null && now - f.failingSince > FAILING_WARN_MS);
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      status: failing || this.threadError !== null ? 'degraded' : 'ok',
      error: this.threadError,
      endpoints: this.figures.map((f) => ({
        url: f.name,
        pending: f.pending,
        failed: f.failed,
        oldestPendingSec: f.oldestPendingAt === null ? 0 : Math.max(0, Math.round((now - f.oldestPendingAt) / 1000)),
        lastError: f.lastError,
        lastDeliveredAt: iso(f.lastDeliveredAt),
      })),
    };
  }
}
