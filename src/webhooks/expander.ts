import type Database from 'better-sqlite3';
import { INSERT_DELIVERIES_SQL } from './outbox-sql.js';

/**
 * Moves the triggers' queue into events with their deliveries (delivery thread): a batch in
 * queue order per transaction, the queue rows deleted in it. An `allocation.ended` waits for its
 * `allocation.started` at each endpoint. An event no endpoint takes any more (the config
 * changed) is dropped.
 */
export class Expander {
  private readonly take: Database.Statement;
  private readonly insertEvent: Database.Statement;
  private readonly startedOf: Database.Statement;
  private readonly insertDeliveries: Database.Statement;
  private readonly dropEvent: Database.Statement;
  private readonly dropQueued: Database.Statement;
  private readonly pendingStmt: Database.Statement;
  private readonly spanStmt: Database.Statement;
  private readonly batch: (limit: number) => number;

  constructor(db: Database.Database) {
    this.take = db.prepare(`SELECT seq, type, alloc_id AS allocId, at FROM webhook_queue ORDER BY seq LIMIT ?`);
    this.insertEvent = db.prepare(`INSERT INTO webhook_events (type, alloc_id, created_at) VALUES (?, ?, ?)`);
    this.startedOf = db
      .prepare(`SELECT seq FROM webhook_events WHERE alloc_id = ? AND type = 'allocation.started'`)
      .pluck();
    this.insertDeliveries = db.prepare(INSERT_DELIVERIES_SQL);
    this.dropEvent = db.prepare(`DELETE FROM webhook_events WHERE seq = ?`);
    this.dropQueued = db.prepare(`DELETE FROM webhook_queue WHERE seq <= ?`);
    this.pendingStmt = db.prepare(`SELECT EXISTS (SELECT 1 FROM webhook_queue)`).pluck();
    this.spanStmt = db.prepare(
      `SELECT (SELECT max(seq) FROM webhook_queue) - min(seq) + 1 AS rows, (SELECT at FROM webhook_queue ORDER BY seq LIMIT 1) AS oldestAt
         FROM webhook_queue`,
    );
    this.batch = db.transaction((limit: number) => {
      const rows = this.take.all(limit) as { seq: number; type: string; allocId: number; at: number }[];
      for (const r of rows) {
        const after =
          r.type === 'allocation.ended' ? ((this.startedOf.get(r.allocId) as number | undefined) ?? null) : null;
        const seq = Number(this.insertEvent.run(r.type, r.allocId, r.at).lastInsertRowid);
        const made = this.insertDeliveries.run({ seq, at: r.at, after, type: r.type }).changes;
        if (made === 0) this.dropEvent.run(seq);
      }
      if (rows.length > 0) this.dropQueued.run(rows[rows.length - 1].seq);
      return rows.length;
    });
  }

  /** Up to `limit` queue rows moved; returns how many. */
  expand(limit: number): number {
    return this.batch(limit);
  }

  /** About how many rows wait in the queue (seq span: no scan), and when the oldest was written; null when empty. */
  waiting(): { rows: number; oldestAt: number } | null {
    const r = this.spanStmt.get() as { rows: number | null; oldestAt: number | null };
    return r.rows === null || r.oldestAt === null ? null : { rows: r.rows, oldestAt: r.oldestAt };
  }

  /** Whether the queue holds rows. */
  pending(): boolean {
    return this.pendingStmt.get() === 1;
  }
}
