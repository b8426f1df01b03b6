import { statSync } from 'node:fs';
import type Database from 'better-sqlite3';

export const DAY_MS = 86_400_000;

export interface GeneratedRows {
  /** Turnserver run of the rows (allocation ids are `${prefix}${i}` within it). */
  run: string;
  n: number;
  /** The i-th row starts at startedAt + i·stepMs. */
  startedAt: number;
  /** The i-th row ends at endedAt + i·stepMs; null: the rows are open. */
  endedAt: number | null;
  /** Open rows: their last checkpoint, default their start. */
  lastEventAt?: number;
  stepMs?: number;
  /** Distinct client ids the rows are spread over (their index entries scatter like real ones). */
  clients?: number;
  prefix?: string;
}

/**
 * Allocation rows written straight into a usage.db opened with the monitor's schema, in one
 * INSERT … SELECT over a recursive sequence (a few hundred thousand rows in a second or two).
 */
export function insertRows(db: Database.Database, g: GeneratedRows): void {
  db.prepare(
    `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < @n)
     INSERT INTO allocations (run, allocation_id, kind, realm, username, client_id, transport, local, remote,
       lifetime, started_at, ended_at, last_event_at, end_reason, end_detail, rcvp, rcvb, sentp, sentb,
       peer_rcvp, peer_rcvb, peer_sentp, peer_sentb, complete)
     SELECT @run, @prefix || printf('%012d', i), 'allocation', 'test.local', 'u' || (i % @clients),
       'c' || (i % @clients), 'UDP', '127.0.0.1:3478', '127.0.0.1:50000', 600,
       @startedAt + i * @step,
       CASE WHEN @endedAt IS NULL THEN NULL ELSE @endedAt + i * @step END,
       coalesce(@endedAt + i * @step, @lastEventAt + i * @step),
       CASE WHEN @endedAt IS NULL THEN NULL ELSE 'deleted' END, NULL,
       1 + i % 50, 100 + i % 5000, 1 + i % 40, 100 + i % 4000, i % 30, i % 3000, i % 20, i % 2000, 1
     FROM seq`,
  ).run({
    run: g.run,
    n: g.n,
    startedAt: g.startedAt,
    endedAt: g.endedAt,
    lastEventAt: g.lastEventAt ?? g.startedAt,
    step: g.stepMs ?? 1000,
    clients: g.clients ?? 50,
    prefix: g.prefix ?? 'a',
  });
}

/** Rows of a run (all of them, or those still open). */
export function countRows(db: Database.Database, run: string, open: boolean | null = null): number {
  const where = open === null ? '' : open ? ' AND ended_at IS NULL' : ' AND ended_at IS NOT NULL';
  return db.prepare(`SELECT count(*) FROM allocations WHERE run = ?${where}`).pluck().get(run) as number;
}

/** usage.db and its WAL on disk, in bytes. */
export function dbFileBytes(file: string): number {
  let n = 0;
  for (const f of [file, `${file}-wal`]) {
    try {
      n += statSync(f).size;
    } catch {
      /* absent */
    }
  }
  return n;
}
