import type Database from 'better-sqlite3';

/**
 * How many rows `allocations` holds, for /health, without count(*) over the table on the event
 * loop (milliseconds per million rows, and seconds with a cold page cache):
 *
 * - counted once at start, in chunks of at most `chunk` entries of the started_at index, one per
 *   call of countChunk() (the caller spreads them over timer turns), up to the highest id of the
 *   start: rows written meanwhile get higher ids (INTEGER PRIMARY KEY takes max(id) + 1);
 * - then tracked: refresh() counts the rows above the highest id counted so far (an id range of
 *   the new rows only), and deleted() subtracts what retention deleted once it committed.
 *
 * No trigger and no table: the ingest path pays nothing. Exact as long as this process is the
 * only writer, which it is (the CLI opens the file read-only). Retention deletes nothing before
 * the first count is complete.
 */
export class RowCount {
  /** Rows with an id up to `watermark`. */
  private base = 0;
  private watermark: number;
  /** The initial count: the started_at value it has counted up to (inclusive). */
  private countedTo: number | null = Number.MIN_SAFE_INTEGER;
  private readonly boundary: Database.Statement;
  private readonly rangeCount: Database.Statement;
  private readonly above: Database.Statement;
  private readonly maxId: Database.Statement;

  constructor(
    db: Database.Database,
    private readonly chunk = 50_000,
  ) {
    this.maxId = db.prepare(`SELECT coalesce(max(id), 0) FROM allocations`).pluck();
    this.watermark = this.maxId.get() as number;
    this.boundary = db
      .prepare(
        `SELECT started_at FROM allocations INDEXED BY allocations_started
          WHERE started_at > ? ORDER BY started_at LIMIT 1 OFFSET ?`,
      )
      .pluck();
    this.rangeCount = db
      .prepare(
        `SELECT count(*) FROM allocations INDEXED BY allocations_started
          WHERE started_at > ? AND started_at <= ? AND id <= ?`,
      )
      .pluck();
    this.above = db.prepare(`SELECT count(*) AS n, max(id) AS top FROM allocations WHERE id > ?`);
  }

  /** Whether the initial count is complete. */
  get counted(): boolean {
    return this.countedTo === null;
  }

  /** The number of rows, null until the initial count is complete. */
  get rows(): number | null {
    return this.counted ? this.base : null;
  }

  /**
   * One chunk of the initial count: the next `chunk` started_at index entries (more when many
   * share the last value, which goes into this chunk whole). True when the count is complete.
   */
  countChunk(): boolean {
    if (this.countedTo === null) return true;
    const from = this.countedTo;
    const next = this.boundary.get(from, this.chunk) as number | undefined;
    const to = next ?? Number.MAX_SAFE_INTEGER;
    this.base += this.rangeCount.get(from, to, this.watermark) as number;
    this.countedTo = next === undefined ? null : to;
    return this.countedTo === null;
  }

  /** Count the rows written since the last refresh (after the initial count). */
  refresh(): void {
    if (!this.counted) return;
    const { n, top } = this.above.get(this.watermark) as { n: number; top: number | null };
    if (top === null) return;
    this.base += n;
    this.watermark = top;
  }

  /**
   * `n` rows, all counted (retention refreshes in the transaction that deletes), were deleted and
   * committed. If they were the newest rows, their ids will be given out again: lower the
   * watermark to the highest id left, so the rows that get them are counted as new.
   */
  deleted(n: number): void {
    if (n === 0) return;
    this.base -= n;
    this.watermark = Math.min(this.watermark, this.maxId.get() as number);
  }
}
