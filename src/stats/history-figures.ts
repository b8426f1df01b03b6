import { statSync } from 'node:fs';
import type { PruneSteps } from './retention-steps.js';
import type { RowCount } from './row-count.js';

/** The history's figures in /health (stats.history). */
export interface HistoryHealth {
  retentionDays: number | null;
  /** Allocation rows in usage.db; null until the count at start is complete. */
  rows: number | null;
  oldestStartedAt: string | null;
  /** usage.db and its WAL, in bytes. */
  dbBytes: number;
  /** Allocation rows deleted by retention since the monitor started. */
  prunedTotal: number;
  /** The last pruning failure, while failures go on; null once a step succeeds again. */
  lastError: string | null;
}

export interface Figures {
  /** Allocation rows; null until the count at start is complete. */
  rows: number | null;
  /** The earliest started_at (epoch ms), null when there are no rows. */
  oldest: number | null;
  /** The database file and its WAL. */
  dbBytes: number;
}

/**
 * What /health and /metrics show of the history, read at most once a second: the tracked row
 * count (row-count.ts; its refresh reads only the rows written since the last one), the oldest
 * start (min() of the started_at index: one index probe) and the file sizes (two stat calls).
 */
export class HistoryFigures {
  private cache: (Figures & { at: number }) | null = null;

  constructor(
    private readonly dbFile: string,
    private readonly open: () => [RowCount, PruneSteps] | null,
  ) {}

  /** Rows were deleted or pages given back: read again at the next ask. */
  invalidate(): void {
    if (this.cache) this.cache.at = -Infinity;
  }

  get(): Figures {
    const now = performance.now();
    if (this.cache && now - this.cache.at < 1000) return this.cache;
    let { rows, oldest } = this.cache ?? { rows: null, oldest: null };
    const open = this.open();
    if (open) {
      const [count, steps] = open;
      try {
        count.refresh();
        rows = count.rows;
        oldest = steps.minStartedAt();
      } catch {
        // A read that failed keeps the last figures.
      }
    }
    this.cache = { at: now, rows, oldest, dbBytes: fileBytes(this.dbFile) };
    return this.cache;
  }
}

/** The database file and its WAL (what the history costs on disk). */
function fileBytes(file: string): number {
  let total = 0;
  for (const f of [file, `${file}-wal`]) {
    try {
      total += statSync(f).size;
    } catch {
      // No WAL (checkpointed and closed), or no file yet.
    }
  }
  return total;
}
