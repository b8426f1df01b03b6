import type { Registry } from 'prom-client';
import type { Logger } from '../log/logger.js';
import type { IncrementSink, UsageEvent, UsageSource } from './events.js';
import { registerStatsMetrics, type StatsMetrics } from './metrics.js';
import type { AllocationRecord } from './allocation-record.js';
import { AllocationModel } from './model.js';
import { QuietCollector } from '../process/quiet-collector.js';
import { closeLeftoversExcept, committedLogPosition, openRecordsOf } from './resume.js';
import { UsageStore, type LogPosition } from './store.js';
import {
  dispositionOf,
  hasProbeSignature,
  hourlyRows,
  OWN_PROBE,
  ownProbeRule,
  relayed,
  type OwnProbes,
} from './unattributed.js';

export interface PipelineOptions {
  dbFile: string;
  source: 'redis' | 'log' | 'both';
  checkpointMs: number;
  deleteGraceMs: number;
  registry: Registry;
  log: Logger;
  now: () => number;
  /** The monitor's own probes, whose coturn sessions are not recorded (none: every session is). */
  ownProbes?: OwnProbes | null;
}

/** How soon after a change new and closed records are written ("within one flush"). */
const FLUSH_DELAY_MS = 50;
/**
 * A burst of events leaves its garbage in V8's old generation (records of closed allocations,
 * the tables that held them), where it stayed: after 20,000 events (some 200 allocations' worth),
 * a second without any gives it back (QuietCollector). 10,000 allocations opened and closed had
 * left the heap at 35–100 MB instead of the 21 MB it holds alive.
 */
const COLLECT = { armAfter: 20_000, quietMs: 1_000 };
/**
 * SQLite's page cache of the store's connection, in KiB: SQLite's own default. better-sqlite3
 * builds SQLite with 16 MB, which a growing usage.db fills and keeps (malloc'd, never given
 * back): 16 MB of the monitor's RSS after a few hundred thousand rows. The cost is in big write
 * batches on a big file: 10,000 allocations opened and closed on 300,000 rows took 0.56 s
 * instead of 0.38 s (bench/README.md, memory).
 */
const STORE_CACHE_KIB = 2000;
/**
 * Log source: how long a checkpoint may wait for the rest of a never-allocated session's closing
 * lines (`usage`, `peer usage`, `closed` are logged together) when a read ended between them.
 */
const SPLIT_HOLD_MS = 1000;

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
  private readonly newListeners = new Set<(r: AllocationRecord) => void>();
  // The log source's position after the last line it handed over (committed with checkpoints).
  private logPosition: LogPosition | null = null;
  private logPositionDirty = false;
  private scheduling = false;
  private timer: NodeJS.Timeout | null = null;
  /** The armed timer fires within FLUSH_DELAY_MS (else it waits for the next checkpoint). */
  private timerSoon = false;
  private readonly collector = new QuietCollector(COLLECT);
  private readonly probes: OwnProbes | null;
  /** Redis source (no address): our probes' sessions are known by their counters alone. */
  private readonly probesBySignature: boolean;
  /** Log source: never-allocated sessions seen open, not stored until they close (holdCheckpoint). */
  private readonly unclosed = new Set<AllocationRecord>();
  private holdingSince: number | null = null;

  constructor(private readonly opts: PipelineOptions) {
    const { log } = opts;
    this.primary = opts.source === 'log' ? 'log' : 'redis';
    this.probes = opts.ownProbes ?? null;
    this.probesBySignature = this.probes !== null && opts.source === 'redis';
    this.metrics = registerStatsMetrics(opts.registry, () => this.model.openCount);
    this.model = new AllocationModel(
      { deleteGraceMs: opts.deleteGraceMs, primary: this.primary, secondary: opts.source === 'both' ? 'log' : null },
      {
        onIncrement: (peer, rcvb, sentb) => this.metrics.relayed(peer, rcvb, sentb),
        onDisagreement: (r) => {
          this.metrics.disagreement();
          log.warn(
            {
              event: 'sources-disagree',
              run: r.run,
              allocationId: r.allocationId,
              redis: [r.totalClient, r.totalPeer],
              log: [r.altClient, r.altPeer],
            },
            'redis and log totals differ',
          );
        },
        onNew: (r) => {
          for (const listener of this.newListeners) listener(r);
        },
        onFilled: (r) => {
          this.metrics.filled();
          log.info(
            { event: 'filled-from-log', run: r.run, allocationId: r.allocationId },
            'totals taken from the log: redis missed the end of this allocation',
          );
        },
      },
    );
  }

  /** Open the database. What earlier monitors left open stays so until closeLeftovers() or resumeRun(). */
  open(): void {
    this.store = new UsageStore(this.opts.dbFile);
    this.store.db.pragma(`cache_size = -${STORE_CACHE_KIB}`);
  }

  /** Close every record earlier monitors left open, but those of keepRun; returns how many. */
  closeLeftovers(keepRun: string | null = null): number {
    return this.store ? closeLeftoversExcept(this.store.db, 'monitor-restart', keepRun) : 0;
  }

  /**
   * The turnserver run an earlier monitor left serving was adopted: carry on with its open
   * records. `gap`: events of the time no monitor ran are lost (Redis pub/sub), so they are
   * incomplete. Returns how many were restored.
   */
  resumeRun(runId: string, gap: boolean): number {
    if (!this.store) return 0;
    const records = openRecordsOf(this.store.db, runId);
    if (gap) {
      for (const r of records) {
        r.gap = true;
        r.complete = false;
      }
    }
    this.model.restore(records);
    return records.length;
  }

  /** The committed position of the log source (where a monitor adopting that run resumes). */
  committedLogPosition(): LogPosition | null {
    return this.store ? committedLogPosition(this.store.db) : null;
  }

  /** The log source handed over everything up to here (of the current run). */
  notePosition(file: string, offset: number): void {
    this.logPosition = { run: this.run, file, offset };
    this.logPositionDirty = true;
  }

  /** Call `listener` with every new allocation (its `new` event); returns the unsubscribe. */
  onNewAllocation(listener: (r: AllocationRecord) => void): () => void {
    this.newListeners.add(listener);
    return () => this.newListeners.delete(listener);
  }

  /** The open record of an allocation of the current turnserver run. */
  openRecord(allocationId: string): AllocationRecord | null {
    return this.model.find(this.run, allocationId);
  }

  /**
   * The monitor is about to end this allocation (disconnect, revoke): once coturn's delete and
   * totals arrive it closes with this reason instead of 'deleted'. False when it is not open.
   */
  markEnding(allocationId: string, reason: string): boolean {
    const r = this.openRecord(allocationId);
    if (!r) return false;
    r.pendingReason = reason;
    return true;
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

  /**
   * Something changed: a new or closed record (Redis source) is written within FLUSH_DELAY_MS;
   * anything else only needs the next checkpoint, so a stream of traffic increments arms no
   * extra timers. With the log as a source every write waits for a checkpoint (with its position).
   */
  private changed(): void {
    if (!this.scheduling) return;
    if (this.opts.source === 'redis' && this.model.hasUrgentWrites) {
      if (!this.timerSoon) this.arm(this.soonMs);
    } else if (!this.timer) {
      // At least FLUSH_DELAY_MS, so that the burst this change starts goes into one write.
      this.arm(Math.max(this.soonMs, this.lastCheckpoint + this.opts.checkpointMs - this.opts.now()));
    }
  }

  private get soonMs(): number {
    return Math.min(FLUSH_DELAY_MS, this.opts.checkpointMs);
  }

  private arm(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timerSoon = delayMs <= FLUSH_DELAY_MS;
    this.timer = setTimeout(this.onTimer, delayMs);
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    this.timerSoon = false;
    if (this.holdCheckpoint()) {
      this.arm(this.soonMs);
      return;
    }
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
    this.metrics.event(event.kind);
    this.collector.note();
    const r = this.model.ingest(event, this.run);
    if (r !== null && r.kind === 'unattributed' && r.endedAt === null && event.source === this.primary)
      this.sessionEvent(r, event.kind, event.at);
    this.changed();
    return r !== null && r.endedAt === null && event.source === this.primary ? r : null;
  }

  increment(
    handle: object,
    peer: boolean,
    rcvp: number,
    rcvb: number,
    sentp: number,
    sentb: number,
    at: number,
  ): boolean {
    const r = handle as AllocationRecord;
    // Closed, deleted (its totals pending) or of an earlier turnserver run: the full path decides.
    if (r.endedAt !== null || r.deletedAt !== null || r.run !== this.run) return false;
    this.metrics.event(peer ? 'traffic/peer' : 'traffic');
    this.collector.note();
    this.model.addIncrement(r, peer, rcvp, rcvb, sentp, sentb, at);
    if (peer && r.kind === 'unattributed') this.sessionEvent(r, 'traffic/peer', at);
    this.changed();
    return true;
  }

  /**
   * An event of the primary source on an open never-allocated session. The log's `closed` line
   * ends it (its usage lines came just before). A Redis report (`traffic` then `traffic/peer`)
   * with our probe's signature ends it at once as our own: it is never stored, and kept no longer.
   */
  private sessionEvent(r: AllocationRecord, kind: UsageEvent['kind'], at: number): void {
    if (kind === 'closed') this.model.closeNow(r, at, 'closed');
    else if (kind === 'traffic/peer' && this.probesBySignature && hasProbeSignature(r) && this.probes!.running())
      this.model.closeNow(r, at, OWN_PROBE);
    else if (this.opts.source === 'log' && !relayed(r)) this.unclosed.add(r);
  }

  /**
   * Log source, at a checkpoint: a never-allocated session is open whose first lines were read
   * just now. It is not stored while open, so a checkpoint committing the log position past those
   * lines would lose them to a monitor that resumes there: wait (up to SPLIT_HOLD_MS) for its
   * `closed` line, which comes with them.
   */
  private holdCheckpoint(): boolean {
    if (this.unclosed.size === 0) return false;
    const now = this.opts.now();
    if (now - this.lastCheckpoint < this.opts.checkpointMs) return false;
    let split = false;
    for (const r of this.unclosed) {
      if (r.endedAt !== null || r.kind !== 'unattributed' || relayed(r)) this.unclosed.delete(r);
      else if (now - r.startedAt < SPLIT_HOLD_MS) split = true;
    }
    if (split) this.holdingSince ??= now;
    if (split && now - this.holdingSince! < SPLIT_HOLD_MS) return true;
    this.holdingSince = null;
    return false;
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

  /** Close the current run's open allocations coturn no longer lists (they ended while no monitor ran). */
  closeUnlisted(live: ReadonlySet<string>, reason: string): number {
    const closed = this.model.closeUnlisted(this.run, live, reason);
    if (closed > 0) this.flush(true);
    return closed;
  }

  /**
   * Write every changed record in one transaction (returned): allocations as rows, closed
   * never-allocated sessions into their hours, our own probes' sessions nowhere
   * (unattributed.ts); time-driven closes run with checkpoints.
   */
  flush(checkpoint = false): AllocationRecord[] {
    if (!this.store) return [];
    try {
      const now = this.opts.now();
      checkpoint ||= now - this.lastCheckpoint >= this.opts.checkpointMs;
      if (checkpoint) {
        this.lastCheckpoint = now;
        this.model.tick(now);
      }
      // With the log as a source, records are written only with the position they were read up
      // to (a checkpoint writes every changed record), so a restart resumes exactly there.
      if (!checkpoint && this.opts.source !== 'redis') return [];
      const records = this.model.drainDirty(checkpoint);
      const rows: AllocationRecord[] = [];
      const sessions: AllocationRecord[] = [];
      for (const r of records) {
        const d = dispositionOf(r, this.probes);
        if (d === 'row') rows.push(r);
        else if (d === 'hourly') sessions.push(r);
        else if (d === 'probe') this.metrics.probeSession(ownProbeRule(r, this.probes)!);
      }
      const position = checkpoint && this.logPositionDirty ? this.logPosition : null;
      this.store.write(rows, position, sessions.length > 0 ? hourlyRows(sessions) : []);
      if (position) this.logPositionDirty = false;
      return records;
    } catch (err) {
      this.opts.log.error({ event: 'store-failed', err: (err as Error).message }, 'writing usage records failed');
      return [];
    }
  }

  close(): void {
    this.scheduling = false;
    this.collector.stop();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.flush(true);
    this.store?.close();
    this.store = null;
  }
}
