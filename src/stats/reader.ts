import type Database from 'better-sqlite3';
import { UsageFormatter, type UsageFormat } from './usage/usage-format.js';
import { openUsageReader, readView } from './usage/usage-rows.js';
import type { UsageFilter, UsageView } from './usage/usage-sql.js';

/** Where streamed text goes; resolves when it can take more (a pipe's backpressure). */
export type TextOut = (text: string) => Promise<void> | void;

/** Text buffered before it is handed to `out` in one piece. */
const PIECE_CHARS = 64 * 1024;

/**
 * Read-only access to a usage database (the CLI's `usage`, also while the monitor is stopped):
 * no migrations, no write statements; waits on the monitor's write lock like any reader.
 */
export class UsageReader {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = openUsageReader(file);
  }

  /** Every row of a view, written as it is read: memory stays bounded whatever the history holds. */
  async stream(
    view: UsageView,
    filter: UsageFilter,
    format: UsageFormat,
    out: TextOut,
    now = Date.now(),
  ): Promise<number> {
    const formatter = new UsageFormatter(format);
    let piece = '';
    let rows = 0;
    for (const { row } of readView(this.db, { view, filter, after: null, limit: null, now })) {
      piece += formatter.row(row);
      rows++;
      if (piece.length >= PIECE_CHARS) {
        await out(piece);
        piece = '';
      }
    }
    piece += formatter.end();
    if (format === 'json') piece += '\n';
    await out(piece);
    return rows;
  }

  close(): void {
    this.db.close();
  }
}
