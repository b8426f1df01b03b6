import type { Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import type { UsageEvent, UsageSink } from './events.js';
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

/**
 * Events in, committed records out: the allocation model, its metrics and the SQLite store with
 * the flush policy (new and closed records at once, open ones every checkpointMs). The Stats
 * subsystem feeds it from its sources; the ingest benchmark drives exactly this class.
 */
export class UsagePipeline implements UsageSink {
  readonly model: AllocationModel;
  store: UsageStore | null = null;
  private readonly metrics: StatsMetrics;
  private run: string | null = null;
  private lastCheckpoint = 0;

  constructor(private readonly opts: PipelineOptions) {
    const { log } = opts;
    this.metrics = registerStatsMetrics(opts.registry, () => this.model.openCount);
    this.model = new AllocationModel(
      { deleteGraceMs: opts.deleteGraceMs, primary: opts.source === 'log' ? 'log' : 'redis', secondary: opts.source === 'both' ? 'log' : null },
      {
        onIncrement: (kind, e) => this.metrics.relayed(kind, e),
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

  /** Events from now on belong to this turnserver run. */
  setRun(runId: string): void {
    this.run = runId;
  }

  ingest(event: UsageEvent): void {
    this.metrics.event(event.kind);
    // Events before the first spawn cannot exist; keep them under a placeholder run all the same.
    this.model.ingest(event, this.run ?? 'before-first-run');
  }

  /** Count a message a source could not parse. */
  malformed(): void {
    this.metrics.malformed();
  }

  /** A source lost events (Redis outage): every open record is possibly incomplete. */
  gap(): void {
    this.metrics.reconnect();
    this.model.markGap();
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
    this.flush(true);
    this.store?.close();
    this.store = null;
  }
}
