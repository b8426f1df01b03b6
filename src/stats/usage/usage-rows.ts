import Database from 'better-sqlite3';
import { rowFromDb, type DbRow } from '../allocation-row.js';
import {
  LOOKBACK_SQL,
  SORT_KEYS,
  viewQuery,
  type Keyset,
  type Lookback,
  type UsageFilter,
  type UsageView,
} from './usage-sql.js';

export interface ViewRead {
  view: UsageView;
  filter: UsageFilter;
  /** Rows after this sort key (the previous page's last), or from the start. */
  after: Keyset | null;
  /** At most this many rows; null: all of them. */
  limit: number | null;
  now: number;
}

const iso = (ms: unknown) => (ms === null || ms === undefined ? null : new Date(ms as number).toISOString());

/** A view row as SQLite returns it → the public row (ISO times, booleans), and its sort key. */
function publicRow(view: UsageView, r: DbRow, keyLength: number): { row: Record<string, unknown>; key: Keyset } {
  const key: Keyset = [];
  for (let i = 0; i < keyLength; i++) {
    key.push(r[`_k${i}`] as string | number);
    delete r[`_k${i}`];
  }
  if (view === 'allocation') return { row: rowFromDb(r) as unknown as Record<string, unknown>, key };
  if (view === 'unattributed') return { row: { ...r, hour: iso(r.hour) }, key };
  const row: Record<string, unknown> = { ...r, relayed: r.relayed === 1 };
  if (view === 'session') {
    row.startedAt = iso(r.startedAt);
    row.endedAt = iso(r.endedAt);
    row.complete = r.complete === 1;
  } else {
    row.firstSeen = iso(r.firstSeen);
    row.lastSeen = iso(r.lastSeen);
  }
  return { row, key };
}

/**
 * A read-only connection for usage reads (the CLI, the query thread). SQLite's own 2 MB page
 * cache, not better-sqlite3's 16 MB: a view's sorts and window partitions each get a cache of
 * that size, and over a long history they spill to temporary files instead of growing the RSS.
 */
export function openUsageReader(file: string): Database.Database {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  db.pragma('cache_size = -2000');
  return db;
}

/** How far before a window's start its live allocations may have started (two index look-ups). */
export function lookback(db: Database.Database): Lookback {
  return db.prepare(LOOKBACK_SQL).get() as Lookback;
}

/**
 * The rows of one view, one at a time as SQLite yields them (memory does not grow with the
 * result), each with its sort key: the last one's key is the next page's cursor.
 */
export function* readView(
  db: Database.Database,
  read: ViewRead,
): Generator<{ row: Record<string, unknown>; key: Keyset }> {
  const q = viewQuery(read.view, read.filter, lookback(db), read.after, read.limit, read.now);
  const keyLength = SORT_KEYS[read.view].length;
  for (const r of db.prepare(q.sql).iterate(q.params) as IterableIterator<DbRow>)
    yield publicRow(read.view, r, keyLength);
}
