import type { Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import type { IncrementSink, UsageEvent, UsageSource } from './events.js';
import { registerStatsMetrics, type StatsMetrics } from './metrics.js';
import { AllocationModel, type AllocationRecord } from './model.js';
import { UsageStore } from './store.js';

export interface PipelineOptions {
  dbFile: string;
  source: 'redis' | 'log' | 'both';
  checkpointMs: number;
  deleteGraceMs: number;
  registry: Registry;
  log: Logger;
  now: () => number;
}

/** How soon after a change new and closed records are written ("within one flush"). */
const FLUSH_DELAY_MS = 50;

/**
 * Events in, committed records out: the allocation model, its metrics and the SQLite store with
 * the flush policy (new and closed records at once, open ones every checkpointMs). The Stats
 * subsystem feeds it from its sources; the ingest benchmark drives exactly this class.
 *
 * With scheduleFlushes() on, a flush is scheduled when the model changes and the timer stops
 * when nothing is left to write or to time out: an idle host runs no stats timer at all.
 */
export class UsagePipeline implements IncrementSink {
  readonly model: AllocationModel;
  store: UsageStore | null = null;
  private readonly metrics: StatsMetrics;
  // Events before the first spawn cannot exist; they would be kept under this placeholder run.
  private run = 'before-first-run';
  private lastCheckpoint = 0;
  private readonly primary: UsageSource;
  private scheduling = false;
  private timer: NodeJS.Timeout | null = null;
  /** The armed timer fires within FLUSH_DELAY_MS (else it waits for the next checkpoint). */
  private timerSoon = false;

  constructor(private readonly opts: PipelineOptions) {
    const { log } = opts;
    this.primary = opts.source === 'log' ? 'log' : 'redis';
    this.metrics = registerStatsMetrics(opts.registry, () => this.model.openCount);
    this.model = new AllocationModel(
      { deleteGraceMs: opts.deleteGraceMs, primary: this.primary, secondary: opts.source === 'both' ? 'log' : null },
      {
        onIncrement: (peer, rcvb, sentb) => this.metrics.relayed(peer, rcvb, sentb),
        onDisagreement: (r) => {
          this.metrics.disagreement();
          log.warn({ event: 'sources-disagree', run: r.run, allocationId: r.allocationId, redis: [r.totalClient, r.totalPeer], log: [r.altClient, r.altPeer] }, 'redis and log totals differ');
        },
        onFilled: (r) => {
          this.metrics.filled();
          log.info({ event: 'filled-from-log', run: r.run, allocationId: r.allocationId }, 'totals taken from the log: redis missed the end of this allocation');
        },
      },
    );
  }

  /** Open the database; returns how many records an earlier monitor left open (now closed). */
  open(): number {
    this.store = new UsageStore(this.opts.dbFile);
    return this.store.closeLeftovers('monitor-restart');
  }

  /** Flush on a timer armed by changes (the Stats subsystem); without it the caller flushes. */
  scheduleFlushes(): void {
    this.scheduling = true;
    this.changed();
  }

  /** Whether a flush timer is armed (an idle pipeline has none). */
  get flushScheduled(): boolean {
    return this.timer !== null;
  }

  /** Something changed: make sure a flush comes within FLUSH_DELAY_MS (cheap: once per timer). */
  private changed(): void {
    if (this.scheduling && !this.timerSoon) this.arm(Math.min(FLUSH_DELAY_MS, this.opts.checkpointMs));
  }

  private arm(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerSoon = delayMs <= FLUSH_DELAY_MS;
    this.timer = setTimeout(this.onTimer, delayMs);
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.timerSoon = false;
    this.flush();
    // Open records changed since the last checkpoint, or deleted ones waiting for their totals:
    // come back at the next checkpoint. Otherwise nothing is due until the next event.
    if (this.store && (this.model.dirtyCount > 0 || this.model.hasTimedWork())) {
      this.arm(Math.max(0, this.lastCheckpoint + this.opts.checkpointMs - this.opts.now()));
    }
  };

  /** Events from now on belong to this turnserver run. */
  setRun(runId: string): void {
    this.run = runId;
  }

  ingest(event: UsageEvent): void {
    this.track(event);
  }

  track(event: UsageEvent): object | null {
    this.changed();
    this.metrics.event(event.kind);
    const r = this.model.ingest(event, this.run);
    return r !== null && r.endedAt === null && event.source === this.primary ? r : null;
  }

  increment(handle: object, peer: boolean, rcvp: number, rcvb: number, sentp: number, sentb: number, at: number): boolean {
    const r = handle as AllocationRecord;
    // Closed, deleted (its totals pending) or of an earlier turnserver run: the full path decides.
    if (r.endedAt !== null || r.deletedAt !== null || r.run !== this.run) return false;
    this.changed();
    this.metrics.event(peer ? 'traffic/peer' : 'traffic');
    this.model.addIncrement(r, peer, rcvp, rcvb, sentp, sentb, at);
    return true;
  }

  /** Count a message a source could not parse. */
  malformed(): void {
    this.metrics.malformed();
  }

  /** A source lost events (Redis outage): every open record is possibly incomplete. */
  gap(): void {
    this.metrics.reconnect();
    this.model.markGap();
    this.changed();
  }

  /** The run's turnserver exited: close what it left open, and write it now. */
  closeRun(runId: string, at: number, reason: string): number {
    const closed = this.model.closeRun(runId, at, reason);
    this.flush(true);
    return closed;
  }

  /** Write every changed record in one transaction (returned); time-driven closes run with checkpoints. */
  flush(checkpoint = false): AllocationRecord[] {
    if (!this.store) return [];
    try {
      const now = this.opts.now();
      checkpoint ||= now - this.lastCheckpoint >= this.opts.checkpointMs;
      if (checkpoint) {
        this.lastCheckpoint = now;
        this.model.tick(now);
      }
      const records = this.model.drainDirty(checkpoint);
      this.store.write(records);
      return records;
    } catch (err) {
      this.opts.log.error({ event: 'store-failed', err: (err as Error).message }, 'writing usage records failed');
      return [];
    }
  }

  close(): void {
    this.scheduling = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flush(true);
    this.store?.close();
    this.store = null;
  }
}
