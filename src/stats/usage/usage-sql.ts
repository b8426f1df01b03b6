import { COLUMNS, COUNTERS } from '../allocation-row.js';

/**
 * The usage views as SQL, so SQLite computes them (window functions) and a read costs what its
 * window holds: every view reads only allocations live in [from, to), found through the
 * started_at index from `from` minus the longest allocation (usage_meta), and pages by keyset on
 * its sort key (stable while the pipeline writes), never by OFFSET.
 */

export type UsageView = 'allocation' | 'session' | 'user' | 'unattributed';

export interface UsageFilter {
  /** Matches the client id or the full username. */
  user?: string;
  /** Allocations that were live at some point in [from, to). */
  from?: number;
  to?: number;
}

/** A page's position: the sort key of the last row it returned. */
export type Keyset = (string | number)[];

export interface ViewQuery {
  sql: string;
  params: Record<string, string | number | null>;
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const SQL_COUNTERS = COUNTERS.map(snake);
/** Summed counters named as in the public row; `stored`: summing the stored (snake_case) columns. */
const sumCounters = (stored: boolean) =>
  COUNTERS.map((k, i) => `sum(${stored ? SQL_COUNTERS[i] : k}) AS ${k}`).join(', ');
/** The stored columns of the public row, as SQLite names them. */
const ROW_COLUMNS = COLUMNS.filter((c) => c.key !== null).map((c) => c.sql);

/** How far before `from` an allocation live at `from` may have started (longest one, oldest open one). */
export const LOOKBACK_SQL = `SELECT
  (SELECT coalesce(max(value), 0) FROM usage_meta WHERE key = 'max_duration_ms') AS maxDuration,
  (SELECT min(started_at) FROM allocations WHERE ended_at IS NULL) AS oldestOpen`;

export interface Lookback {
  maxDuration: number;
  oldestOpen: number | null;
}

const NO_BOUND_LOW = -1;
const NO_BOUND_HIGH = 8.64e15;

/** The rows of one kind live in the window, as a WHERE clause over `allocations`. */
function windowWhere(f: UsageFilter, lookback: Lookback, params: ViewQuery['params']): string {
  const where = ['kind = @kind', 'started_at >= @lo', 'started_at < @hi'];
  const from = f.from ?? NO_BOUND_LOW;
  params.lo =
    f.from === undefined ? NO_BOUND_LOW : Math.min(from - lookback.maxDuration, lookback.oldestOpen ?? Infinity);
  params.hi = f.to ?? NO_BOUND_HIGH;
  if (f.from !== undefined) {
    where.push('(ended_at IS NULL OR ended_at >= @from)');
    params.from = from;
  }
  if (f.user !== undefined) {
    where.push('(client_id = @user OR username = @user)');
    params.user = f.user;
  }
  return where.join(' AND ');
}

/** `(a, b, …) > (@k0, @k1, …)`: rows after the keyset, or nothing without one. */
function after(cols: string[], key: Keyset | null, params: ViewQuery['params']): string {
  if (key === null) return '';
  key.forEach((v, i) => (params[`k${i}`] = v));
  return `(${cols.join(', ')}) > (${cols.map((_, i) => `@k${i}`).join(', ')})`;
}

/** Sort keys per view, as the columns of the final SELECT. */
export const SORT_KEYS: Record<UsageView, string[]> = {
  allocation: ['started_at', 'id'],
  unattributed: ['hour', 'realm', 'username'],
  session: ['s0', 'realm_key', 'client_id'],
  user: ['first_seen', 'realm_key', 'client_id'],
};

/** Sessions per (realm, client): allocations whose lifetimes overlap form one (an open one extends to now). */
function sessionsCte(where: string): string {
  return `w AS (
      SELECT id, realm, client_id, started_at, coalesce(ended_at, @now) AS e, ended_at IS NULL AS open,
        complete, ${SQL_COUNTERS.join(', ')}
      FROM allocations WHERE ${where}),
    m AS (SELECT *, max(e) OVER (PARTITION BY realm, client_id ORDER BY started_at, id
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end FROM w),
    g AS (SELECT *, sum(CASE WHEN prev_end IS NULL OR started_at > prev_end THEN 1 ELSE 0 END)
        OVER (PARTITION BY realm, client_id ORDER BY started_at, id ROWS UNBOUNDED PRECEDING) AS grp FROM m),
    s AS (SELECT realm, coalesce(realm, '') AS realm_key, client_id, min(started_at) AS s0, max(e) AS e1,
        max(open) AS open, count(*) AS allocations, ${sumCounters(true)}, min(complete) AS complete
      FROM g GROUP BY realm, client_id, grp)`;
}

const relayed = `(peerRcvb + peerSentb > 0)`;
/** A session's length in whole seconds; an open one runs until now. */
const DURATION = `CAST(round((CASE WHEN open THEN @now ELSE e1 END - s0) / 1000.0) AS INTEGER)`;

/** One page (or, with limit null, all) of a view, in its sort order; every row carries its sort key as _k0, _k1…. */
export function viewQuery(
  view: UsageView,
  f: UsageFilter,
  lookback: Lookback,
  key: Keyset | null,
  limit: number | null,
  now: number,
): ViewQuery {
  const params: ViewQuery['params'] = { kind: 'allocation', now };
  const cols = SORT_KEYS[view];
  const keyCols = cols.map((c, i) => `${c} AS _k${i}`).join(', ');
  const page = (cond: string) =>
    `${cond ? `WHERE ${cond}` : ''} ORDER BY ${cols.join(', ')}${limit === null ? '' : ` LIMIT ${limit}`}`;
  if (view === 'unattributed') return unattributedQuery(f, key, page, keyCols, params);
  const where = windowWhere(f, lookback, params);
  let sql: string;
  if (view === 'allocation') {
    const cond = [where, after(cols, key, params)].filter(Boolean).join(' AND ');
    sql = `SELECT ${ROW_COLUMNS.join(', ')}, ${keyCols} FROM allocations ${page(cond)}`;
  } else if (view === 'session') {
    sql = `WITH ${sessionsCte(where)}
      SELECT realm, client_id AS clientId, s0 AS startedAt, CASE WHEN open THEN NULL ELSE e1 END AS endedAt,
        ${DURATION} AS durationSec, allocations, ${COUNTERS.join(', ')},
        ${relayed} AS relayed, complete, ${keyCols}
      FROM s ${page(after(cols, key, params))}`;
  } else {
    sql = `WITH ${sessionsCte(where)},
      u AS (SELECT realm, realm_key, client_id, count(*) AS sessions, sum(allocations) AS allocations,
          sum(${DURATION}) AS durationSec, ${sumCounters(false)},
          max(open) AS open, min(s0) AS first_seen, max(e1) AS last_end
        FROM s GROUP BY realm, client_id)
      SELECT realm, client_id AS clientId, sessions, allocations, durationSec, ${COUNTERS.join(', ')},
        ${relayed} AS relayed, first_seen AS firstSeen, CASE WHEN open THEN NULL ELSE last_end END AS lastSeen,
        ${keyCols}
      FROM u ${page(after(cols, key, params))}`;
  }
  return { sql, params };
}

const HOUR_MS = 3_600_000;

/**
 * Sessions that never allocated, per UTC hour, realm and username: the hourly sums, and the
 * records of such sessions stored one by one (relay traffic, and history from before the sums)
 * folded into their hour. Hours overlapping [from, to).
 */
function unattributedQuery(
  f: UsageFilter,
  key: Keyset | null,
  page: (cond: string) => string,
  keyCols: string,
  params: ViewQuery['params'],
): ViewQuery {
  params.kind = 'unattributed';
  params.hfrom = f.from === undefined ? NO_BOUND_LOW : Math.floor(f.from / HOUR_MS) * HOUR_MS;
  params.hto = f.to ?? NO_BOUND_HIGH;
  const hourly = ['hour >= @hfrom', 'hour < @hto'];
  const rows = ['kind = @kind', 'started_at >= @hfrom', 'started_at < @hto'];
  if (f.user !== undefined) {
    params.user = f.user;
    hourly.push('username = @user');
    rows.push('(client_id = @user OR username = @user)');
  }
  const sql = `WITH h AS (
      SELECT hour, realm, username, sessions, ${SQL_COUNTERS.join(', ')} FROM unattributed_hourly
       WHERE ${hourly.join(' AND ')}
      UNION ALL
      SELECT (started_at / ${HOUR_MS}) * ${HOUR_MS}, coalesce(realm, ''), username, 1, ${SQL_COUNTERS.join(', ')}
        FROM allocations WHERE ${rows.join(' AND ')}),
    u AS (SELECT hour, realm, username, sum(sessions) AS sessions, ${sumCounters(true)} FROM h
      GROUP BY hour, realm, username)
    SELECT hour, realm, username, sessions, ${COUNTERS.join(', ')}, ${keyCols}
      FROM u ${page(after(SORT_KEYS.unattributed, key, params))}`;
  return { sql, params };
}
