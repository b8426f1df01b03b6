import type Database from 'better-sqlite3';
import { openRecordFromDb, type OpenRow } from './allocation-row.js';
import type { AllocationRecord } from './allocation-record.js';
import type { LogPosition } from './store.js';

// Reading back what an earlier monitor committed, when this one adopts its turnserver run. Kept
// apart from store.ts (the write side) so the row shape is read in one place.

/** The log source's committed position, or null (never written). */
export function committedLogPosition(db: Database.Database): LogPosition | null {
  const row = db.prepare(`SELECT run, file, offset FROM log_position WHERE id = 1`).get() as LogPosition | undefined;
  return row ?? null;
}

/** The checkpointed open allocations of one turnserver run, as model records (to carry on with). */
export function openRecordsOf(db: Database.Database, run: string): AllocationRecord[] {
  const rows = db.prepare(`SELECT * FROM allocations WHERE ended_at IS NULL AND run = ?`).all(run) as OpenRow[];
  return rows.map(openRecordFromDb);
}

/** Close what earlier monitors left open, except the run being carried on; returns how many. */
export function closeLeftoversExcept(db: Database.Database, reason: string, keepRun: string | null): number {
  return db
    .prepare(
      `UPDATE allocations SET ended_at = last_event_at, end_reason = ?, complete = 0 WHERE ended_at IS NULL AND run IS NOT ?`,
    )
    .run(reason, keepRun).changes;
}
