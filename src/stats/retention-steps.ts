import type Database from 'better-sqlite3';
import type { AutoVacuumSetup } from './auto-vacuum.js';
import {
  nextBatchSize,
  planBatch,
  type BatchPlan,
  type Cursor,
  type ScannedRow,
  type StepLimits,
} from './retention-plan.js';
import type { RowCount } from './row-count.js';

// Closed rows past the cutoff after the cursor, in the order of the allocations_ended index.
export const SCAN = `SELECT id, ended_at, 0 FROM allocations
  WHERE ended_at IS NOT NULL AND ended_at < ? AND (ended_at, id) > (?, ?) ORDER BY ended_at, id LIMIT ?`;
// The same, each with whether it is still marked in the export outbox (not shipped).
export const SCAN_UNSHIPPED = `SELECT a.id, a.ended_at, o.alloc_id IS NOT NULL FROM allocations a
  LEFT JOIN export_outbox o ON o.alloc_id = a.id
  WHERE a.ended_at IS NOT NULL AND a.ended_at < ? AND (a.ended_at, a.id) > (?, ?) ORDER BY a.ended_at, a.id LIMIT ?`;

// The same for unattributed_hourly, in the order of its primary key (hour, realm, username).
const HOURLY_WHERE = `WHERE h.hour < ? AND (h.hour, h.realm, h.username) > (?, ?, ?)
  ORDER BY h.hour, h.realm, h.username LIMIT ?`;
export const SCAN_HOURLY = `SELECT h.hour, h.realm, h.username, 0 FROM unattributed_hourly h ${HOURLY_WHERE}`;
export const SCAN_HOURLY_UNSHIPPED = `SELECT h.hour, h.realm, h.username, o.hour IS NOT NULL
  FROM unattributed_hourly h LEFT JOIN export_outbox_hourly o USING (hour, realm, username) ${HOURLY_WHERE}`;

/** Where an hourly pass stands: the key of the last row it looked at. */
export type HourKey = readonly [hour: number, realm: string, username: string];
export const HOURLY_START: HourKey = [Number.MIN_SAFE_INTEGER, '', ''];

export interface HourlyBatch {
  rows: number;
  /** Rows kept because they have not shipped. */
  kept: number;
  cursor: HourKey;
  done: boolean;
}

/**
 * The SQL of retention, one bounded step at a time, on the store's connection (retention.ts
 * decides when). Around each write the connection's busy_timeout is 0 (another process's lock
 * fails the step at once instead of stalling the event loop) and, while a checkpoint worker
 * takes that job, its automatic checkpoint is off; both are put back right after.
 */
export class PruneSteps {
  /** Whether SQLite's automatic checkpoint is turned off around the writes (see checkpointer.ts). */
  offloadCheckpoints = true;
  private batchRows: number;
  private vacuumPages: number;
  private readonly busyTimeout: number;
  private readonly autoCheckpoint: number;
  private readonly statements = new Map<string, Database.Statement>();

  constructor(
    private readonly db: Database.Database,
    private readonly count: RowCount,
    private readonly opts: StepLimits & { exportEnabled: boolean; autoVacuum: AutoVacuumSetup['mode'] },
  ) {
    this.batchRows = opts.batchRows;
    this.vacuumPages = opts.vacuumPages;
    this.busyTimeout = db.pragma('busy_timeout', { simple: true }) as number;
    this.autoCheckpoint = db.pragma('wal_autocheckpoint', { simple: true }) as number;
  }

  private stmt(sql: string): Database.Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  private unblocking<T>(fn: () => T): T {
    const db = this.db;
    db.pragma('busy_timeout = 0');
    if (this.offloadCheckpoints) db.pragma('wal_autocheckpoint = 0');
    try {
      return fn();
    } finally {
      db.pragma(`busy_timeout = ${this.busyTimeout}`);
      db.pragma(`wal_autocheckpoint = ${this.autoCheckpoint}`);
    }
  }

  /** Tables of other parts: the export's outbox, the unattributed hourly totals. */
  tableExists(name: string): boolean {
    return this.stmt(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
  }

  /** Whether the record still has its export_outbox mark (the outbox exists). */
  marked(id: number): boolean {
    return this.stmt(`SELECT 1 FROM export_outbox WHERE alloc_id = ?`).get(id) !== undefined;
  }

  /**
   * One batch of allocations past the cutoff after the cursor, in one transaction: the unshipped
   * ones (export on) stay, the others go, with their outbox marks (with the export off the
   * outbox's triggers still mark changes). The next batch's size follows this one's time.
   */
  batch(cutoff: number, cursor: Cursor): BatchPlan {
    const outbox = this.tableExists('export_outbox');
    const scan = this.stmt(this.opts.exportEnabled && outbox ? SCAN_UNSHIPPED : SCAN).raw();
    const del = this.stmt(`DELETE FROM allocations WHERE id = ?`);
    const unmark = outbox ? this.stmt(`DELETE FROM export_outbox WHERE alloc_id = ?`) : null;
    const limit = this.batchRows;
    const started = performance.now();
    const plan = this.unblocking(() =>
      this.db.transaction(() => {
        // Every row about to be deleted is counted first (see RowCount.deleted).
        this.count.refresh();
        const rows = (scan.all(cutoff, cursor[0], cursor[1], limit) as number[][]).map(
          ([id, endedAt, unshipped]): ScannedRow => ({ id, endedAt, unshipped: unshipped === 1 }),
        );
        const p = planBatch(rows, limit, cursor);
        for (const id of p.ids) {
          del.run(id);
          unmark?.run(id);
        }
        return p;
      })(),
    );
    this.count.deleted(plan.ids.length);
    const { minBatchRows: min, maxBatchRows: max, batchBudgetMs: budgetMs } = this.opts;
    this.batchRows = nextBatchSize(limit, performance.now() - started, { min, max, budgetMs });
    return plan;
  }

  /**
   * One batch of unattributed_hourly rows whose hour began before the cutoff, after the cursor
   * (the primary key's order). It has an outbox of its own (export_outbox_hourly), kept like the
   * allocations': with the export on, a marked hour stays until it shipped, and while that outbox
   * does not exist yet nothing has shipped, so nothing goes.
   */
  hourly(cutoff: number, cursor: HourKey): HourlyBatch {
    const none = { rows: 0, kept: 0, cursor, done: true };
    if (!this.tableExists('unattributed_hourly')) return none;
    const outbox = this.tableExists('export_outbox_hourly');
    if (this.opts.exportEnabled && !outbox) return none;
    const scan = this.stmt(this.opts.exportEnabled ? SCAN_HOURLY_UNSHIPPED : SCAN_HOURLY).raw();
    const del = this.stmt(`DELETE FROM unattributed_hourly WHERE hour = ? AND realm = ? AND username = ?`);
    const unmark = outbox
      ? this.stmt(`DELETE FROM export_outbox_hourly WHERE hour = ? AND realm = ? AND username = ?`)
      : null;
    const limit = this.opts.maxBatchRows;
    return this.unblocking(() =>
      this.db.transaction((): HourlyBatch => {
        const rows = scan.all(cutoff, ...cursor, limit) as [number, string, string, number][];
        let deleted = 0;
        for (const [hour, realm, username, unshipped] of rows) {
          if (unshipped === 1) continue;
          del.run(hour, realm, username);
          unmark?.run(hour, realm, username);
          deleted++;
        }
        const last = rows.at(-1);
        return {
          rows: deleted,
          kept: rows.length - deleted,
          cursor: last ? [last[0], last[1], last[2]] : cursor,
          done: rows.length < limit,
        };
      })(),
    );
  }

  /**
   * One incremental_vacuum step: free pages given back to the file system. `done` when none is
   * left (or the file cannot give any back: auto-vacuum NONE, or FULL, which does it at commit).
   */
  vacuum(): { pages: number; done: boolean } {
    if (this.opts.autoVacuum !== 'incremental') return { pages: 0, done: true };
    const free = this.db.pragma('freelist_count', { simple: true }) as number;
    if (free === 0) return { pages: 0, done: true };
    const pages = Math.min(free, this.vacuumPages);
    const started = performance.now();
    this.unblocking(() => this.db.pragma(`incremental_vacuum(${pages})`));
    const budgetMs = this.opts.batchBudgetMs;
    this.vacuumPages = nextBatchSize(pages, performance.now() - started, { min: 16, max: 4096, budgetMs });
    return { pages, done: pages === free };
  }

  /** A checkpoint here, on the event loop (when the worker cannot). */
  checkpointHere(): void {
    this.unblocking(() => this.db.pragma('wal_checkpoint(PASSIVE)'));
  }

  minStartedAt(): number | null {
    return this.stmt(`SELECT min(started_at) FROM allocations`).pluck().get() as number | null;
  }
}
