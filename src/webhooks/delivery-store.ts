import Database from 'better-sqlite3';
import type { DbRow } from '../stats/allocation-row.js';
import { allocationEvent } from './event-writer.js';
import { Expander } from './expander.js';
import { hostTag } from './outbox-sql.js';

/** The delivery thread checkpoints its own writes at most this often (see DeliveryStore.checkpoint). */
export const CHECKPOINT_EVERY_MS = 250;

/** A delivery ready to be sent: due, and not waiting for an earlier event of its order. */
export interface DueRow {
  seq: number;
  nextAt: number;
  attempts: number;
  queuedAt: number;
  /** The event's id and body: null for an allocation event whose record is gone (pruned). Made on first use. */
  message(): { id: string; body: string } | null;
}

interface DueDbRow extends DbRow {
  d_seq: number;
  d_next_at: number;
  d_attempts: number;
  d_queued_at: number;
  ev_type: string;
  ev_id: string | null;
  ev_body: string | null;
}

/** What became of one attempt, written in the next batch. */
export type Settled =
  | { endpointId: number; seq: number; kind: 'delivered' }
  | { endpointId: number; seq: number; kind: 'retry'; nextAt: number; error: string }
  | { endpointId: number; seq: number; kind: 'failed'; error: string; at: number };

/**
 * The delivery thread's statements on its own connection to usage.db (WAL: it reads while the
 * pipeline writes; its writes are small batches, so the pipeline's transactions barely wait).
 */
export class DeliveryStore {
  private readonly db: Database.Database;
  private readonly dueStmt: Database.Statement;
  private readonly applyBatch: (rows: Settled[]) => void;
  private readonly reviveStmt: Database.Statement;
  private readonly countStmt: Database.Statement;
  private readonly oldestStmt: Database.Statement;
  private readonly expiredStmt: Database.Statement;
  private readonly dropStmt: Database.Statement;
  private readonly dropEventStmt: Database.Statement;
  private readonly expander: Expander;

  private readonly tag: string;

  constructor(
    file: string,
    private readonly hostId: string,
  ) {
    this.db = new Database(file, { fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
    this.tag = hostTag(hostId);
    this.expander = new Expander(this.db);
    // Rows in (next_at, seq) order from the index; an event whose predecessor is still pending
    // at this endpoint (being sent, or waiting for its retry) is passed over.
    // Rows in (next_at, seq) order from the index; an event whose predecessor is still pending
    // at this endpoint (being sent, or waiting for its retry) is passed over.
    this.dueStmt = this.db.prepare(
      `SELECT d.event_seq AS d_seq, d.next_at AS d_next_at, d.attempts AS d_attempts, d.queued_at AS d_queued_at,
              ev.type AS ev_type, ev.id AS ev_id, ev.body AS ev_body, a.*
         FROM webhook_deliveries d JOIN webhook_events ev ON ev.seq = d.event_seq
         LEFT JOIN allocations a ON a.id = ev.alloc_id
        WHERE d.endpoint_id = @ep AND d.status = 'pending' AND d.next_at <= @now
          AND (d.after_seq IS NULL OR NOT EXISTS (SELECT 1 FROM webhook_deliveries p
                WHERE p.event_seq = d.after_seq AND p.endpoint_id = @ep AND p.status = 'pending'))
        ORDER BY d.next_at, d.event_seq LIMIT @limit`,
    );
    const del = this.db.prepare(`DELETE FROM webhook_deliveries WHERE event_seq = ? AND endpoint_id = ?`);
    this.dropEventStmt = this.db.prepare(
      `DELETE FROM webhook_events WHERE seq = @seq AND NOT EXISTS (SELECT 1 FROM webhook_deliveries WHERE event_seq = @seq)`,
    );
    const retry = this.db.prepare(
      `UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = ?, last_error = ?
        WHERE event_seq = ? AND endpoint_id = ? AND status = 'pending'`,
    );
    const fail = this.db.prepare(
      `UPDATE webhook_deliveries SET status = 'failed', attempts = attempts + 1, next_at = ?, last_error = ?
        WHERE event_seq = ? AND endpoint_id = ? AND status = 'pending'`,
    );
    this.applyBatch = this.db.transaction((rows: Settled[]) => {
      for (const r of rows) {
        if (r.kind === 'delivered') {
          del.run(r.seq, r.endpointId);
          this.dropEventStmt.run({ seq: r.seq });
        } else if (r.kind === 'retry') retry.run(r.nextAt, r.error, r.seq, r.endpointId);
        else fail.run(r.at, r.error, r.seq, r.endpointId);
      }
    });
    this.reviveStmt = this.db.prepare(
      `UPDATE webhook_deliveries SET next_at = @now WHERE endpoint_id = @ep AND status = 'pending' AND next_at > @now`,
    );
    this.countStmt = this.db
      .prepare(`SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = ? AND status = ?`)
      .pluck();
    this.oldestStmt = this.db
      .prepare(`SELECT min(queued_at) FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'pending'`)
      .pluck();
    // Failed rows carry their failure time in next_at: retention reads the index.
    this.expiredStmt = this.db
      .prepare(
        `SELECT event_seq FROM webhook_deliveries WHERE endpoint_id = ? AND status = 'failed' AND next_at < ? LIMIT 500`,
      )
      .pluck();
    this.dropStmt = del;
  }

  /** Up to `limit` sendable rows of an endpoint, due by `now` (or the next ones to come due, with `now` far ahead). */
  due(endpointId: number, now: number, limit: number): DueRow[] {
    return (this.dueStmt.all({ ep: endpointId, now, limit }) as DueDbRow[]).map((r) => {
      let made: { id: string; body: string } | null | undefined;
      const message = () => {
        if (made !== undefined) return made;
        if (r.ev_id !== null && r.ev_body !== null) made = { id: r.ev_id, body: r.ev_body };
        else if (r.id === null) made = null;
        else made = allocationEvent(r.ev_type as 'allocation.started' | 'allocation.ended', r, this.tag, this.hostId);
        return made;
      };
      return { seq: r.d_seq, nextAt: r.d_next_at, attempts: r.d_attempts, queuedAt: r.d_queued_at, message };
    });
  }

  /** The triggers' queue: about how many rows, and the oldest one's time; null when empty. */
  waiting(): { rows: number; oldestAt: number } | null {
    return this.expander.waiting();
  }

  /** Whether events written by the triggers wait for their deliveries. */
  queued(): boolean {
    return this.expander.pending();
  }

  /** Deliveries for up to `limit` events written by the triggers; returns how many were taken. */
  expand(limit: number): number {
    const n = this.expander.expand(limit);
    if (n > 0) this.checkpoint();
    return n;
  }

  private lastCheckpoint = 0;
  /** Pages of ours were left in the WAL by a checkpoint the throttle skipped. */
  private checkpointOwed = false;

  /**
   * The WAL pages our writes add, copied into the database here (PASSIVE: no writer waits for
   * it), at most every CHECKPOINT_EVERY_MS: SQLite would otherwise run that copy on whichever
   * connection commits once the WAL passes 1000 pages, often the pipeline's, on the monitor's
   * event loop. A skipped one is owed, and taken by settleCheckpoint() once the window is over.
   */
  private checkpoint(now = Date.now()): void {
    if (now - this.lastCheckpoint < CHECKPOINT_EVERY_MS) {
      this.checkpointOwed = true;
      return;
    }
    this.lastCheckpoint = now;
    this.checkpointOwed = false;
    this.db.pragma('wal_checkpoint(PASSIVE)');
  }

  /** At every look: the checkpoint the throttle skipped, once it is allowed (the burst's last writes). */
  settleCheckpoint(now: number): void {
    if (this.checkpointOwed) this.checkpoint(now);
  }

  /** Write what became of a batch of attempts, in one transaction. */
  apply(rows: Settled[]): void {
    if (rows.length === 0) return;
    this.applyBatch(rows);
    this.checkpoint();
  }

  /** The endpoint answers again: everything waiting out a backoff is due now. Returns how many. */
  revive(endpointId: number, now: number): number {
    return this.reviveStmt.run({ ep: endpointId, now }).changes;
  }

  figures(endpointId: number): { pending: number; failed: number; oldestPendingAt: number | null } {
    return {
      pending: this.countStmt.get(endpointId, 'pending') as number,
      failed: this.countStmt.get(endpointId, 'failed') as number,
      oldestPendingAt: (this.oldestStmt.get(endpointId) as number | null) ?? null,
    };
  }

  /** Delete failed deliveries older than `before` (and events left without any); returns how many. */
  prune(endpointId: number, before: number): number {
    let total = 0;
    for (;;) {
      const seqs = this.expiredStmt.all(endpointId, before) as number[];
      if (seqs.length === 0) return total;
      this.db.transaction(() => {
        for (const seq of seqs) {
          this.dropStmt.run(seq, endpointId);
          this.dropEventStmt.run({ seq });
        }
      })();
      total += seqs.length;
    }
  }

  close(): void {
    this.db.close();
  }
}
