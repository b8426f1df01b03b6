import type { Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import { Checkpointer } from './checkpointer.js';
import { HistoryFigures, type HistoryHealth } from './history-figures.js';
import { registerRetentionMetrics, type RetentionMetrics } from './metrics.js';
import {
  cutoffFor,
  DEFAULT_TUNING,
  START,
  type Cursor,
  type RetentionTuning,
  type ScannedRow,
} from './retention-plan.js';
import { HOURLY_START, PruneSteps, type HourKey } from './retention-steps.js';
import { RowCount } from './row-count.js';
import type { UsageStore } from './store.js';

export type { RetentionTuning } from './retention-plan.js';
export type { HistoryHealth } from './history-figures.js';

export interface RetentionOptions {
  dbFile: string;
  retentionDays: number | null;
  /** export.postgres.url is set: a record is deleted only once its export_outbox mark is gone. */
  exportEnabled: boolean;
  registry: Registry;
  log: Logger;
  now: () => number;
  tuning?: Partial<RetentionTuning>;
}

interface Pass {
  cutoff: number;
  stage: 'allocations' | 'hourly' | 'vacuum';
  cursor: Cursor;
  hourCursor: HourKey;
  deleted: number;
  hourly: number;
  kept: number;
  keptHourly: number;
  firstKept: ScannedRow | null;
  vacuumed: number;
  startedAt: number;
}

/**
 * Bounded history: closed allocations that ended more than stats.retentionDays ago are deleted,
 * with their export_outbox marks, a small batch per timer turn, then the unattributed_hourly
 * hours before that time likewise, and the freed pages are given back with incremental_vacuum.
 * With the export on, a record still marked (not shipped) is kept until it shipped, whatever its
 * age. Open allocations are never deleted.
 *
 * A pass runs every idleMs: steps of one write each (retention-steps.ts) gapMs apart; after each
 * write, the WAL is checkpointed on a worker thread (checkpointer.ts) before the next step. The
 * first pass follows the row count at start (row-count.ts). A failed step is logged once per
 * failure streak and the pass starts over after retryMs.
 */
export class Retention {
  private readonly tuning: RetentionTuning;
  private readonly metrics: RetentionMetrics;
  private steps: PruneSteps | null = null;
  private count: RowCount | null = null;
  private timer: NodeJS.Timeout | null = null;
  private pass: Pass | null = null;
  /** After a pass: when the next is due, and the first row it kept unshipped (watched). */
  private waiting: { firstKept: ScannedRow | null; nextPassAt: number } | null = null;
  /** The last step wrote: checkpoint before the next. */
  private wrote = false;
  private checkpointer: Checkpointer | null = null;
  private failure: string | null = null;
  private pruned = 0;
  private readonly figures: HistoryFigures;
  private countStartedAt = 0;
  private waitingLogged = false;

  constructor(private readonly opts: RetentionOptions) {
    this.tuning = { ...DEFAULT_TUNING, ...opts.tuning };
    this.figures = new HistoryFigures(opts.dbFile, () => (this.steps && this.count ? [this.count, this.steps] : null));
    this.metrics = registerRetentionMetrics(opts.registry, () => this.figures.get().dbBytes);
  }

  /** After the store is open: log what opening did, then count the rows and prune on a timer. */
  start(store: UsageStore): void {
    if (this.steps) return;
    const { log, retentionDays } = this.opts;
    const { vacuumMs, error, mode } = store.autoVacuum;
    if (vacuumMs !== null)
      log.info(
        { event: 'auto-vacuum-enabled', ms: vacuumMs },
        'usage.db switched to incremental auto-vacuum (one VACUUM): pruned space goes back to the disk',
      );
    if (error !== null)
      log.warn(
        { event: 'auto-vacuum-failed', err: error, mode },
        'could not switch usage.db to incremental auto-vacuum (tried again at the next start); pruned space is reused, not given back',
      );
    log.info(
      { event: 'retention-starting', retentionDays, autoVacuum: mode },
      retentionDays === null
        ? 'keeping all usage history (stats.retentionDays null)'
        : `keeping ${retentionDays} days of usage history`,
    );
    this.count = new RowCount(store.db, this.tuning.countChunk);
    this.steps = new PruneSteps(store.db, this.count, {
      ...this.tuning,
      exportEnabled: this.opts.exportEnabled,
      autoVacuum: mode,
    });
    this.countStartedAt = performance.now();
    this.schedule(0);
  }

  /** Idempotent; the store stays open (the pipeline closes it). */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.pass = null;
    this.steps = null;
    this.count = null;
    const c = this.checkpointer;
    this.checkpointer = null;
    await c?.close();
  }

  private schedule(delayMs: number | null): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = delayMs === null || !this.steps ? null : setTimeout(this.onTimer, delayMs);
    this.timer?.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    if (!this.steps) return;
    let next: number | null;
    try {
      next = this.step(this.steps);
      if (this.failure !== null) {
        this.opts.log.info({ event: 'retention-recovered' }, 'pruning usage history works again');
        this.failure = null;
      }
    } catch (err) {
      next = this.failed(err as Error);
    }
    const wrote = this.wrote;
    this.wrote = false;
    if (!wrote && (this.pass || !this.checkpointer)) return this.schedule(next);
    const started = performance.now();
    void this.afterWrite(wrote).then(() => {
      if (next !== null) next = Math.max(0, next - (performance.now() - started));
      this.schedule(next);
    });
  };

  /** Checkpoint what the step wrote (on the worker); once the pass is over, close the worker. */
  private async afterWrite(wrote: boolean): Promise<void> {
    const steps = this.steps;
    if (wrote && steps?.offloadCheckpoints) {
      try {
        this.checkpointer ??= new Checkpointer(this.opts.dbFile);
        await this.checkpointer.checkpoint();
      } catch (err) {
        if (!this.steps) return; // stopped meanwhile: the worker was closed under it
        const message = (err as Error).message;
        if (this.checkpointer?.broken === false) {
          // The checkpoint itself failed (an I/O error): the next write checkpoints again.
          this.opts.log.debug({ event: 'checkpoint-failed', err: message }, 'checkpoint after pruning failed');
        } else {
          steps.offloadCheckpoints = false;
          this.opts.log.warn(
            { event: 'checkpoint-worker-failed', err: message },
            "the checkpoint worker failed: pruning's checkpoints run on the event loop from now on",
          );
          try {
            steps.checkpointHere();
          } catch {
            // SQLite's automatic checkpoint at a later commit does it.
          }
        }
      }
    }
    if (this.pass && steps?.offloadCheckpoints) return;
    const c = this.checkpointer;
    this.checkpointer = null;
    await c?.close();
  }

  private failed(err: Error): number {
    const { log } = this.opts;
    // Once per failure streak at warn; the retries at debug.
    if (this.failure === null)
      log.warn(
        { event: 'retention-failed', err: err.message, code: (err as { code?: string }).code },
        'pruning usage history failed; retried later (ingest goes on)',
      );
    else log.debug({ event: 'retention-retry-failed', err: err.message }, 'pruning retry failed');
    this.failure = err.message;
    // The pass starts over after retryMs: what it deleted is gone, the rest is found again.
    this.pass = null;
    this.waiting = null;
    return this.tuning.retryMs;
  }

  /** One unit of work, at most one write; returns the delay to the next (null: none, ever). */
  private step(steps: PruneSteps): number | null {
    const t = this.tuning;
    const count = this.count!;
    if (!count.counted) {
      if (!count.countChunk()) return 0;
      const ms = Math.round(performance.now() - this.countStartedAt);
      this.opts.log.debug({ event: 'history-counted', rows: count.rows, ms }, 'usage history counted');
    }
    if (!this.pass) {
      const cutoff = cutoffFor(this.opts.now(), this.opts.retentionDays);
      if (cutoff === null) return null;
      const wait = this.waitBeforePass(steps);
      if (wait !== null) return wait;
      this.pass = {
        cutoff,
        stage: 'allocations',
        cursor: START,
        hourCursor: HOURLY_START,
        deleted: 0,
        hourly: 0,
        kept: 0,
        keptHourly: 0,
        firstKept: null,
        vacuumed: 0,
        startedAt: performance.now(),
      };
    }
    const pass = this.pass;
    if (pass.stage === 'allocations') {
      const plan = steps.batch(pass.cutoff, pass.cursor);
      const n = plan.ids.length;
      this.wrote ||= n > 0;
      this.pruned += n;
      this.metrics.pruned(n);
      this.figures.invalidate();
      pass.cursor = plan.cursor;
      pass.deleted += n;
      pass.kept += plan.kept;
      pass.firstKept ??= plan.firstKept;
      if (plan.exhausted) pass.stage = 'hourly';
      return plan.exhausted && n === 0 ? 0 : t.gapMs;
    }
    if (pass.stage === 'hourly') {
      const { rows, kept, cursor, done } = steps.hourly(pass.cutoff, pass.hourCursor);
      this.wrote ||= rows > 0;
      pass.hourly += rows;
      pass.keptHourly += kept;
      pass.hourCursor = cursor;
      if (done) pass.stage = 'vacuum';
      return done && rows === 0 ? 0 : t.gapMs;
    }
    const { pages, done } = steps.vacuum();
    this.wrote ||= pages > 0;
    pass.vacuumed += pages;
    this.figures.invalidate();
    return done ? this.finish(pass) : t.gapMs;
  }

  /**
   * Whether to wait before starting a pass (ms), or null to start now. With the export on, the
   * outbox must exist (the export subsystem creates it and marks every record at its first start);
   * after a pass that kept unshipped rows, the next one starts as soon as the first of them shipped.
   */
  private waitBeforePass(steps: PruneSteps): number | null {
    if (this.opts.exportEnabled && !steps.tableExists('export_outbox')) {
      if (!this.waitingLogged)
        this.opts.log.debug({ event: 'retention-waiting' }, 'waiting for the export outbox before pruning');
      this.waitingLogged = true;
      return this.tuning.watchMs;
    }
    const w = this.waiting;
    if (!w) return null;
    const now = performance.now();
    if (now >= w.nextPassAt) return null;
    if (!w.firstKept) return w.nextPassAt - now;
    if (!steps.marked(w.firstKept.id)) return null;
    return Math.min(this.tuning.watchMs, w.nextPassAt - now);
  }

  private finish(pass: Pass): number {
    const fields = {
      rows: pass.deleted,
      hourlyRows: pass.hourly,
      keptUnshipped: pass.kept,
      keptHourlyUnshipped: pass.keptHourly,
      vacuumedPages: pass.vacuumed,
      cutoff: new Date(pass.cutoff).toISOString(),
      ms: Math.round(performance.now() - pass.startedAt),
    };
    if (pass.deleted > 0 || pass.hourly > 0 || pass.vacuumed > 0)
      this.opts.log.info(
        { event: 'retention-pruned', ...fields },
        `pruned ${pass.deleted} usage records older than ${this.opts.retentionDays} days`,
      );
    else this.opts.log.debug({ event: 'retention-pass', ...fields }, 'nothing to prune');
    this.pass = null;
    const t = this.tuning;
    this.waiting = { firstKept: pass.firstKept, nextPassAt: performance.now() + t.idleMs };
    return pass.firstKept ? t.watchMs : t.idleMs;
  }

  history(): HistoryHealth {
    const { rows, oldest, dbBytes } = this.figures.get();
    return {
      retentionDays: this.opts.retentionDays,
      rows,
      oldestStartedAt: oldest === null ? null : new Date(oldest).toISOString(),
      dbBytes,
      prunedTotal: this.pruned,
      lastError: this.failure,
    };
  }
}
