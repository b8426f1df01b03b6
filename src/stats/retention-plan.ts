/** The pure decisions of retention and its tuning (retention.ts does the timing, retention-steps.ts the SQL). */

export const DAY_MS = 86_400_000;

/** Closed records that ended before this time (epoch ms) are pruned; null = keep everything. */
export function cutoffFor(now: number, retentionDays: number | null): number | null {
  return retentionDays === null ? null : now - retentionDays * DAY_MS;
}

/** Where a pass stands in (ended_at, id) order: the last row it looked at. */
export type Cursor = readonly [endedAt: number, id: number];

/** The start of a pass: before every row (ended_at is epoch ms, ids are positive). */
export const START: Cursor = [Number.MIN_SAFE_INTEGER, Number.MIN_SAFE_INTEGER];

/** One closed row past the cutoff, as a batch scans them (in ended_at, id order). */
export interface ScannedRow {
  id: number;
  endedAt: number;
  /** It has an export_outbox mark and the export is on: not shipped yet, so it stays. */
  unshipped: boolean;
}

export interface BatchPlan {
  /** Rows to delete now. */
  ids: number[];
  /** Rows kept because they have not shipped. */
  kept: number;
  /** The first row kept (retention watches its mark to come back as soon as it shipped). */
  firstKept: ScannedRow | null;
  /** Where the next batch of this pass goes on from. */
  cursor: Cursor;
  /** The scan came back short: nothing past the cutoff beyond the cursor, the pass is done. */
  exhausted: boolean;
}

/**
 * What to do with one scanned batch. The scan reads at most `limit` rows after the cursor, so a
 * batch costs `limit` index entries however many unshipped rows lie past the cutoff (a PostgreSQL
 * outage longer than the retention): the pass steps over them instead of reading them again.
 */
export function planBatch(rows: readonly ScannedRow[], limit: number, from: Cursor): BatchPlan {
  const ids: number[] = [];
  let firstKept: ScannedRow | null = null;
  for (const r of rows) {
    if (!r.unshipped) ids.push(r.id);
    else firstKept ??= r;
  }
  const last = rows.at(-1);
  return {
    ids,
    kept: rows.length - ids.length,
    firstKept,
    cursor: last ? [last.endedAt, last.id] : from,
    exhausted: rows.length < limit,
  };
}

export interface SizeBounds {
  min: number;
  max: number;
  /** What one batch may hold the event loop for (scan, deletes and commit). */
  budgetMs: number;
}

/**
 * The next batch's size from how long the last one took: halved when it went over the budget,
 * grown by a quarter while it stays under half of it. A batch's cost per row depends on the disk,
 * the page cache and how scattered the rows' index entries are, so it is measured, not assumed.
 */
export function nextBatchSize(size: number, tookMs: number, b: SizeBounds): number {
  if (tookMs > b.budgetMs) return Math.max(b.min, Math.floor(size / 2));
  if (tookMs < b.budgetMs / 2) return Math.min(b.max, Math.ceil(size * 1.25));
  return size;
}

export interface StepLimits {
  /** Rows of the first batch, and the bounds the measured size moves in. */
  batchRows: number;
  minBatchRows: number;
  maxBatchRows: number;
  /** What one step (scan, deletes, commit) may hold the event loop for. */
  batchBudgetMs: number;
  /** Pages of the first incremental_vacuum step. */
  vacuumPages: number;
}

export interface RetentionTuning extends StepLimits {
  /** Pause between two steps of a pass: the event loop is free for everything else. */
  gapMs: number;
  /** Between passes; rows crossing the cutoff meanwhile wait for the next one. */
  idleMs: number;
  /** While rows past the cutoff wait to ship: how often the first one's mark is looked at. */
  watchMs: number;
  /** After a failed step (disk full, SQLITE_BUSY from another process). */
  retryMs: number;
  /** started_at index entries per chunk of the initial row count. */
  countChunk: number;
}

export const DEFAULT_TUNING: RetentionTuning = {
  batchRows: 200,
  minBatchRows: 10,
  maxBatchRows: 500,
  batchBudgetMs: 4,
  vacuumPages: 128,
  gapMs: 20,
  idleMs: 10 * 60_000,
  watchMs: 2000,
  retryMs: 30_000,
  countChunk: 10_000,
};
