import Database from 'better-sqlite3';
import { queryUsage, type UsageFilter, type UsageView } from './query.js';

/**
 * Read-only access to a usage database (the CLI's `usage`, also while the monitor is stopped):
 * no migrations, no write statements; waits on the monitor's write lock like any reader.
 */
export class UsageReader {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file, { readonly: true, fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
  }

  query(view: UsageView, filter: UsageFilter, now = Date.now()): Record<string, unknown>[] {
    return queryUsage(this.db, view, filter, now);
  }

  close(): void {
    this.db.close();
  }
}
