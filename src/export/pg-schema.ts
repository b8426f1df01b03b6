import type pg from 'pg';
import { COLUMNS, type Column } from '../stats/allocation-row.js';
import { HOURLY_COUNTERS } from '../stats/unattributed.js';

/**
 * The fleet schema in PostgreSQL, in its own schema `turn_monitor`. Versioned migrations kept in
 * one table of our own (`turn_monitor.migrations`): a handful of statements need no migration
 * library, and running them inside our own transaction lets one advisory lock make a fleet that
 * starts at once migrate exactly once (the others wait on the lock, then find nothing to do).
 */
export const SCHEMA = 'turn_monitor';
const LOCK_KEY = 'turn-monitor:migrations';

const pgType = (c: Column) => ({ text: 'text', int: 'bigint', time: 'timestamptz', bool: 'boolean' })[c.kind];
const columnDefs = COLUMNS.map((c) => `${c.sql} ${pgType(c)}${c.nullable ? '' : ' NOT NULL'}`).join(',\n    ');
const sumCounters = COLUMNS.filter((c) => c.kind === 'int' && c.key !== null)
  .map((c) => `sum(${c.sql})::bigint AS ${c.sql}`)
  .join(', ');

/** Billing per client per period, across hosts; an allocation counts in the period it started. */
const billing = (period: 'hour' | 'day') => `
  CREATE VIEW ${SCHEMA}.client_usage_${period === 'hour' ? 'hourly' : 'daily'} AS
  SELECT date_trunc('${period}', started_at AT TIME ZONE 'UTC') AS ${period}, realm, client_id,
         count(*) AS allocations, count(DISTINCT host_id) AS hosts, ${sumCounters},
         sum(rcvb + sentb)::bigint AS client_bytes, sum(peer_rcvb + peer_sentb)::bigint AS peer_bytes,
         bool_and(complete) AS complete
    FROM ${SCHEMA}.allocations WHERE kind = 'allocation'
   GROUP BY 1, realm, client_id;`;

export const MIGRATIONS: string[] = [
  `CREATE TABLE ${SCHEMA}.allocations (
    host_id text NOT NULL,
    ${columnDefs},
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, run, allocation_id)
  );
  CREATE INDEX allocations_started ON ${SCHEMA}.allocations (started_at);
  CREATE INDEX allocations_client ON ${SCHEMA}.allocations (client_id, started_at);
  CREATE INDEX allocations_open ON ${SCHEMA}.allocations (host_id) WHERE ended_at IS NULL;
  -- Sessions per host: a client's allocations whose lifetimes overlap (an open one extends to now).
  CREATE VIEW ${SCHEMA}.sessions AS
  WITH a AS (
    SELECT *, COALESCE(ended_at, now()) AS end_eff FROM ${SCHEMA}.allocations WHERE kind = 'allocation'
  ), m AS (
    SELECT *, max(end_eff) OVER (PARTITION BY host_id, realm, client_id ORDER BY started_at, allocation_id
                                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end FROM a
  ), g AS (
    SELECT *, sum(CASE WHEN prev_end IS NULL OR started_at > prev_end THEN 1 ELSE 0 END)
              OVER (PARTITION BY host_id, realm, client_id ORDER BY started_at, allocation_id) AS grp FROM m
  )
  SELECT host_id, realm, client_id, min(started_at) AS started_at,
         CASE WHEN bool_or(ended_at IS NULL) THEN NULL ELSE max(ended_at) END AS ended_at,
         count(*) AS allocations, ${sumCounters},
         sum(peer_rcvb + peer_sentb) > 0 AS relayed, bool_and(complete) AS complete
    FROM g GROUP BY host_id, realm, client_id, grp;
  ${billing('hour')}
  ${billing('day')}`,
  // Sessions that never allocated (bindings, failed authentications), per host and hour: each
  // host ships its current totals of an hour (the upsert SETs them, so a re-send changes nothing).
  `CREATE TABLE ${SCHEMA}.unattributed_hourly (
    host_id text NOT NULL,
    hour timestamptz NOT NULL,
    realm text NOT NULL,
    username text NOT NULL,
    sessions bigint NOT NULL,
    ${HOURLY_COUNTERS.map((c) => `${c} bigint NOT NULL`).join(',\n    ')},
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, hour, realm, username)
  );
  CREATE INDEX unattributed_hourly_hour ON ${SCHEMA}.unattributed_hourly (hour);`,
];

/** Create or migrate the schema; safe to run from every host at once. Returns versions applied. */
export async function migrate(client: pg.Client): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [LOCK_KEY]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${SCHEMA}.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${SCHEMA}.migrations`);
    const current = rows[0]?.v ?? 0;
    for (let v = current; v < MIGRATIONS.length; v++) {
      await client.query(MIGRATIONS[v]);
      await client.query(`INSERT INTO ${SCHEMA}.migrations (version) VALUES ($1)`, [v + 1]);
    }
    await client.query('COMMIT');
    return Math.max(0, MIGRATIONS.length - current);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

const PG_COLUMNS = ['host_id', ...COLUMNS.map((c) => c.sql)];
const KEY = new Set(['host_id', 'run', 'allocation_id']);
const END = new Set(['ended_at', 'end_reason', 'end_detail', 'complete']);
const t = `${SCHEMA}.allocations`;

/** How each column is updated on conflict: counters never go down, the end is set once. */
function onConflict(c: string): string {
  const col = COLUMNS.find((x) => x.sql === c)!;
  if (col.kind === 'int' && col.key !== null) return `${c} = GREATEST(${t}.${c}, EXCLUDED.${c})`;
  if (c === 'started_at') return `${c} = LEAST(${t}.${c}, EXCLUDED.${c})`;
  if (c === 'last_event_at') return `${c} = GREATEST(${t}.${c}, EXCLUDED.${c})`;
  if (c === 'ended_at') return `${c} = COALESCE(${t}.ended_at, EXCLUDED.ended_at)`;
  if (END.has(c)) return `${c} = CASE WHEN ${t}.ended_at IS NULL THEN EXCLUDED.${c} ELSE ${t}.${c} END`;
  return `${c} = EXCLUDED.${c}`;
}

const UPDATE = [...PG_COLUMNS.filter((c) => !KEY.has(c)).map(onConflict), 'shipped_at = now()'].join(', ');
const upsertCache = new Map<number, string>();

/** The multi-row upsert of `n` rows; parameters row by row in `upsertColumns` order. */
export function upsertSql(n: number): string {
  let sql = upsertCache.get(n);
  if (sql) return sql;
  const w = PG_COLUMNS.length;
  const values = Array.from({ length: n }, (_, i) => `(${PG_COLUMNS.map((_, j) => `$${i * w + j + 1}`).join(', ')})`);
  sql = `INSERT INTO ${t} (${PG_COLUMNS.join(', ')}) VALUES ${values.join(', ')}
    ON CONFLICT (host_id, run, allocation_id) DO UPDATE SET ${UPDATE}`;
  upsertCache.set(n, sql);
  return sql;
}

export const upsertColumns = PG_COLUMNS;

const HOURLY_COLUMNS = ['host_id', 'hour', 'realm', 'username', 'sessions', ...HOURLY_COUNTERS];
const hourlyUpsertCache = new Map<number, string>();

/**
 * The multi-row upsert of `n` rows of `unattributed_hourly`, parameters row by row in
 * `hourlyUpsertColumns` order: the host's current totals of each hour replace what was there.
 */
export function hourlyUpsertSql(n: number): string {
  let sql = hourlyUpsertCache.get(n);
  if (sql) return sql;
  const w = HOURLY_COLUMNS.length;
  const values = Array.from(
    { length: n },
    (_, i) => `(${HOURLY_COLUMNS.map((_, j) => `$${i * w + j + 1}`).join(', ')})`,
  );
  const set = HOURLY_COLUMNS.slice(4).map((c) => `${c} = EXCLUDED.${c}`);
  sql = `INSERT INTO ${SCHEMA}.unattributed_hourly (${HOURLY_COLUMNS.join(', ')}) VALUES ${values.join(', ')}
    ON CONFLICT (host_id, hour, realm, username) DO UPDATE SET ${[...set, 'shipped_at = now()'].join(', ')}`;
  hourlyUpsertCache.set(n, sql);
  return sql;
}

export const hourlyUpsertColumns = HOURLY_COLUMNS;
