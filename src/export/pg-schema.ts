import type pg from 'pg';
import { COLUMNS, type Column } from '../stats/allocation-row.js';
import { HOURLY_COUNTERS } from '../stats/unattributed.js';

/**
 * The fleet schema in PostgreSQL, in its own schema `turn_monitor`. Versioned migrations kept in
 * one table of our own (`turn_monitor.migrations`): a handful of statements need no migration
 * library, and running them inside our own transaction lets one advisory lock make a fleet that
 * starts at once migrate exactly once (the others wait on the lock, then find nothing to do).
 * The same lock serialises partition maintenance (partitions.ts).
 */
export const SCHEMA = 'turn_monitor';
export const LOCK_KEY = 'turn-monitor:migrations';

const pgType = (c: Column) => ({ text: 'text', int: 'bigint', time: 'timestamptz', bool: 'boolean' })[c.kind];
const columnDefs = COLUMNS.map((c) => `${c.sql} ${pgType(c)}${c.nullable ? '' : ' NOT NULL'}`).join(',\n    ');
/** The eight counters (client side then peer side), as stored. */
export const COUNTER_COLUMNS = COLUMNS.filter((c) => c.kind === 'int' && c.key !== null).map((c) => c.sql);
const sumCounters = COUNTER_COLUMNS.map((c) => `sum(${c})::bigint AS ${c}`).join(', ');

/** v1's billing views (replaced in v3): an allocation counted in the period it started. */
const billingV1 = (period: 'hour' | 'day') => `
  CREATE VIEW ${SCHEMA}.client_usage_${period === 'hour' ? 'hourly' : 'daily'} AS
  SELECT date_trunc('${period}', started_at AT TIME ZONE 'UTC') AS ${period}, realm, client_id,
         count(*) AS allocations, count(DISTINCT host_id) AS hosts, ${sumCounters},
         sum(rcvb + sentb)::bigint AS client_bytes, sum(peer_rcvb + peer_sentb)::bigint AS peer_bytes,
         bool_and(complete) AS complete
    FROM ${SCHEMA}.allocations WHERE kind = 'allocation'
   GROUP BY 1, realm, client_id;`;

/** Sessions per host: a client's allocations whose lifetimes overlap (an open one extends to now). */
const sessionsView = `
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
    FROM g GROUP BY host_id, realm, client_id, grp;`;

/**
 * What every rollup row carries, summed: allocations first shipped in it, the eight counters,
 * their client-side and peer-side byte totals, and allocations counted while incomplete.
 */
export const ROLLUP_SUMS = ['allocations', ...COUNTER_COLUMNS, 'client_bytes', 'peer_bytes', 'incomplete'];
const rollupColumns = [
  ...['allocations', 'hosts', ...ROLLUP_SUMS.slice(1)].map((c) => `${c} bigint NOT NULL DEFAULT 0`),
  `host_ids text[] NOT NULL DEFAULT '{}'`,
].join(',\n    ');
/** The distinct host ids of a group of rollup rows, sorted (hosts_union concatenates their arrays). */
export const unionHostIds = (col = 'host_ids') =>
  `ARRAY(SELECT DISTINCT h FROM unnest(${SCHEMA}.hosts_union(${col})) h ORDER BY h)`;
const sumRollup = (exclude: string[] = []) =>
  ROLLUP_SUMS.filter((c) => !exclude.includes(c))
    .map((c) => `sum(${c})::bigint AS ${c}`)
    .join(', ');

/**
 * The partitioned store (v3). Partition key: `started_at` as the record was FIRST shipped.
 * Why that one: billing and every windowed read select by time, so months of `started_at` make
 * whole partitions prunable and droppable; and a row must never move between partitions, so the
 * key must be a value that never changes once shipped. The monitor may still lower a record's
 * started_at after it shipped (a `new` seen after its first traffic), so the shipper never
 * updates it: the row is found by its identity (host_id, run, allocation_id), in whatever
 * partition holds it, and updated in place there (see SHIP_SQL). The primary key has to contain
 * the partition key, hence (host_id, run, allocation_id, started_at); its prefix is the identity.
 * Rows whose month has no partition yet land in the default partition, emptied into the month
 * when it is created (create_allocations_month).
 */
const partitionedTable = `
  CREATE TABLE ${SCHEMA}.allocations (
    host_id text NOT NULL,
    ${columnDefs},
    shipped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, run, allocation_id, started_at)
  ) PARTITION BY RANGE (started_at);
  CREATE TABLE ${SCHEMA}.allocations_default PARTITION OF ${SCHEMA}.allocations DEFAULT;`;

const partitionedIndexes = `
  CREATE INDEX allocations_started ON ${SCHEMA}.allocations (started_at);
  CREATE INDEX allocations_client ON ${SCHEMA}.allocations (client_id, started_at);
  CREATE INDEX allocations_open ON ${SCHEMA}.allocations (started_at) WHERE ended_at IS NULL;
  CREATE INDEX allocations_ended ON ${SCHEMA}.allocations USING brin (ended_at) WITH (pages_per_range = 32);`;

/**
 * The month's partition, created if missing; rows of that month waiting in the default partition
 * move into it in the same transaction (ATTACH refuses while the default holds any). Writers of
 * the default partition wait the moment it takes (EXCLUSIVE lock on it). Returns the partition's
 * name when it created one, NULL when it existed. Callers hold the advisory lock.
 */
const createMonthFunction = `
  CREATE FUNCTION ${SCHEMA}.create_allocations_month(m timestamptz) RETURNS text LANGUAGE plpgsql AS $f$
  DECLARE
    lo timestamptz := date_trunc('month', m AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', m AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    part text := 'allocations_' || to_char(m AT TIME ZONE 'UTC', 'YYYY_MM');
  BEGIN
    IF EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = '${SCHEMA}.allocations'::regclass AND c.relname = part) THEN
      RETURN NULL;
    END IF;
    LOCK TABLE ${SCHEMA}.allocations_default IN EXCLUSIVE MODE;
    EXECUTE format('CREATE TABLE ${SCHEMA}.%I (LIKE ${SCHEMA}.allocations INCLUDING DEFAULTS)', part);
    EXECUTE format('WITH moved AS (DELETE FROM ${SCHEMA}.allocations_default WHERE started_at >= $1 AND started_at < $2 RETURNING *)
                    INSERT INTO ${SCHEMA}.%I SELECT * FROM moved', part) USING lo, hi;
    EXECUTE format('ALTER TABLE ${SCHEMA}.allocations ATTACH PARTITION ${SCHEMA}.%I FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    RETURN part;
  END $f$;`;

/**
 * The rollups billing reads, maintained as rows ship (SHIP_SQL): each shipped change adds to the
 * hour of the record's latest event the difference between the counters it brings and those the
 * row had, so bytes count in the hour they were relayed (± intervalSec) and a re-sent row adds
 * nothing. Sum of a client's rollup rows = sum of its allocations' counters, exactly.
 * `hosts` cannot be summed: each row keeps the ids of the hosts that relayed for the client in it
 * (`host_ids`, a host added by its own shipper's first change there) and `hosts` counts them;
 * longer periods count the distinct ids of their rows (hosts_union). client_usage_monthly is rolled
 * in the same statement (a view over the hourly rows would cost what a month holds).
 * realm may be NULL (turnserver without a realm): the keys treat NULLs as equal.
 */
const rollupTables = `
  CREATE TABLE ${SCHEMA}.client_usage_hourly (
    hour timestamp NOT NULL,
    realm text,
    client_id text NOT NULL,
    ${rollupColumns},
    CONSTRAINT client_usage_hourly_key UNIQUE NULLS NOT DISTINCT (hour, realm, client_id)
  ) WITH (fillfactor = 85);
  CREATE INDEX client_usage_hourly_client ON ${SCHEMA}.client_usage_hourly (client_id, hour);
  CREATE TABLE ${SCHEMA}.client_usage_monthly (
    month timestamp NOT NULL,
    realm text,
    client_id text NOT NULL,
    ${rollupColumns},
    CONSTRAINT client_usage_monthly_key UNIQUE NULLS NOT DISTINCT (month, realm, client_id)
  ) WITH (fillfactor = 85);
  CREATE INDEX client_usage_monthly_client ON ${SCHEMA}.client_usage_monthly (client_id, month);`;

/** Two rows' realms equal, NULLs included, in a form a hash join can use (realm may be NULL). */
export const sameRealm = (a: string, b: string) =>
  `coalesce(${a}.realm, '') = coalesce(${b}.realm, '') AND (${a}.realm IS NULL) = (${b}.realm IS NULL)`;

const HOUR_OF = (col: string) => `date_trunc('hour', ${col} AT TIME ZONE 'UTC')`;
const isAlloc = (r: string) => `(${r}.kind = 'allocation')`;
/** A row's contribution to the rollups: its counters if it is an allocation, else nothing. */
const contrib = (r: string, c: string) => `CASE WHEN ${isAlloc(r)} THEN ${r}.${c} ELSE 0 END`;
const contribIncomplete = (r: string) => `CASE WHEN ${isAlloc(r)} AND NOT ${r}.complete THEN 1 ELSE 0 END`;
const contribAlloc = (r: string) => `CASE WHEN ${isAlloc(r)} THEN 1 ELSE 0 END`;

/**
 * The rollups from the raw rows (alias `a`) that `where` selects (the migration from v1 and
 * fleet-check --repair): each allocation's counters in the hour of its last event (the
 * incremental rollup spreads them over the hours they were relayed in; totals per client are the
 * same), and its host in that hour.
 */
export function rollupFromRaw(where = 'true'): string[] {
  return [
    `INSERT INTO ${SCHEMA}.client_usage_hourly (hour, realm, client_id, ${ROLLUP_SUMS.join(', ')}, hosts, host_ids)
     SELECT ${HOUR_OF('a.last_event_at')}, a.realm, a.client_id, count(*), ${COUNTER_COLUMNS.map((c) => `sum(a.${c})`).join(', ')},
            sum(a.rcvb + a.sentb), sum(a.peer_rcvb + a.peer_sentb), count(*) FILTER (WHERE NOT a.complete),
            count(DISTINCT a.host_id), array_agg(DISTINCT a.host_id ORDER BY a.host_id)
       FROM ${SCHEMA}.allocations a WHERE a.kind = 'allocation' AND (${where})
      GROUP BY 1, a.realm, a.client_id`,
  ];
}

/** client_usage_monthly rows summed from the hourly rows (alias `x`) that `where` selects: whole months for the keys it names. */
export function monthlyFromHourly(where = 'true'): string {
  return `
    INSERT INTO ${SCHEMA}.client_usage_monthly (month, realm, client_id, ${ROLLUP_SUMS.join(', ')}, host_ids, hosts)
    SELECT u.*, cardinality(u.host_ids) FROM (
      SELECT date_trunc('month', x.hour) AS month, x.realm, x.client_id, ${sumRollup()}, ${unionHostIds('x.host_ids')} AS host_ids
        FROM ${SCHEMA}.client_usage_hourly x WHERE ${where} GROUP BY 1, x.realm, x.client_id) u`;
}

/**
 * client_usage_daily (v1's name and columns): days summed from the hourly rollup, hosts counted
 * from the host hours. client_usage_monthly is the rolled table itself.
 */
const dailyView = `
  CREATE VIEW ${SCHEMA}.client_usage_daily AS
  SELECT date_trunc('day', hour) AS day, realm, client_id, sum(allocations)::bigint AS allocations,
         cardinality(${unionHostIds()})::bigint AS hosts,
         ${[...COUNTER_COLUMNS, 'client_bytes', 'peer_bytes'].map((c) => `sum(${c})::bigint AS ${c}`).join(', ')},
         sum(incomplete) = 0 AS complete
    FROM ${SCHEMA}.client_usage_hourly GROUP BY 1, realm, client_id;`;

const V1_COLUMNS = ['host_id', ...COLUMNS.map((c) => c.sql), 'shipped_at'].join(', ');

/**
 * v3: the v1 table becomes the partitioned store, with the rollups built from its rows (their
 * bytes in the hour of each allocation's last event). One transaction under the advisory lock
 * (migrate()): a fleet sees either v2 or v3, never half of it.
 */
const v3 = `
  DROP VIEW ${SCHEMA}.sessions, ${SCHEMA}.client_usage_hourly, ${SCHEMA}.client_usage_daily;
  DROP INDEX ${SCHEMA}.allocations_started, ${SCHEMA}.allocations_client, ${SCHEMA}.allocations_open;
  ALTER TABLE ${SCHEMA}.allocations RENAME TO allocations_v1;
  ALTER TABLE ${SCHEMA}.allocations_v1 RENAME CONSTRAINT allocations_pkey TO allocations_v1_pkey;
  ${partitionedTable}
  -- Months whose raw partition retention dropped (fleet-check compares no window before them).
  CREATE TABLE ${SCHEMA}.dropped_partitions (month timestamp PRIMARY KEY, dropped_at timestamptz NOT NULL DEFAULT now());
  ${createMonthFunction}
  SELECT ${SCHEMA}.create_allocations_month(m)
    FROM (SELECT DISTINCT date_trunc('month', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m
            FROM ${SCHEMA}.allocations_v1) months;
  INSERT INTO ${SCHEMA}.allocations (${V1_COLUMNS}) SELECT ${V1_COLUMNS} FROM ${SCHEMA}.allocations_v1;
  ${partitionedIndexes}
  CREATE AGGREGATE ${SCHEMA}.hosts_union(text[]) (sfunc = array_cat, stype = text[], initcond = '{}');
  ${rollupTables}
  ${rollupFromRaw().join(';\n')};
  ${monthlyFromHourly()};
  DROP TABLE ${SCHEMA}.allocations_v1;
  ${sessionsView}
  ${dailyView}
  ANALYZE ${SCHEMA}.allocations;`;

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
  ${sessionsView}
  ${billingV1('hour')}
  ${billingV1('day')}`,
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
  v3,
  // v4, quotas (src/quotas): per-client overrides a billing system edits, and what the enforcer
  // did per client and period (so a new enforcer neither warns twice nor forgets a denial). No
  // CHECK constraints on client_quotas: a bad row is skipped and reported, never refused.
  `CREATE TABLE ${SCHEMA}.client_quotas (
    realm text NOT NULL,
    client_id text NOT NULL,
    period_bytes bigint,
    note text,
    PRIMARY KEY (realm, client_id)
  );
  CREATE TABLE ${SCHEMA}.quota_state (
    realm text NOT NULL,
    client_id text NOT NULL,
    period_start timestamp NOT NULL,
    warned boolean NOT NULL DEFAULT false,
    exceeded boolean NOT NULL DEFAULT false,
    used_bytes bigint,
    quota_bytes bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (realm, client_id)
  );`,
  // v5: client_usage_daily filters on date_trunc('day', hour), which the (hour, …) key cannot
  // serve: one day of every client read the whole hourly rollup (bench rollup_choice). Indexed,
  // a day costs its own rows. (hour is a timestamp without zone: date_trunc on it is immutable.)
  `CREATE INDEX client_usage_hourly_day ON ${SCHEMA}.client_usage_hourly (date_trunc('day', hour));`,
  // v6: one client's days (client_usage_daily WHERE client_id = … AND day >= …): the (client_id,
  // hour) index bounds only the client, so the read went through every hour the client ever had
  // and cost what the store's age held (bench fleet_store). Bounded by the day, it costs its window.
  `CREATE INDEX client_usage_hourly_client_day ON ${SCHEMA}.client_usage_hourly (client_id, date_trunc('day', hour));`,
];

/**
 * For the statements that may rightly take long (waiting for the lock another host holds while it
 * migrates, the v3 migration of a large v1 table, moving or deleting a month of rows): a deadline
 * of an hour instead of the shipper's per-query one, which would abort them again and again.
 */
export const SLOW_QUERY_MS = 3_600_000;

/** A query with SLOW_QUERY_MS as its deadline (pg reads `query_timeout` per query; its types do not list it). */
export function slowQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(
  client: pg.Client,
  text: string,
  values?: unknown[],
): Promise<pg.QueryResult<R>> {
  return client.query<R>({ text, values, query_timeout: SLOW_QUERY_MS } as pg.QueryConfig);
}

/** Create or migrate the schema; safe to run from every host at once. Returns versions applied. */
export async function migrate(client: pg.Client): Promise<number> {
  await client.query('BEGIN');
  try {
    await slowQuery(client, 'SELECT pg_advisory_xact_lock(hashtext($1))', [LOCK_KEY]);
    // Up to date: no DDL at all, so a role that may only write rows (the schema migrated by its
    // owner) connects too.
    const known = await client.query<{ t: string | null }>(`SELECT to_regclass('${SCHEMA}.migrations')::text AS t`);
    if (known.rows[0]?.t === null) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${SCHEMA}`);
      await client.query(
        `CREATE TABLE ${SCHEMA}.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
      );
    }
    const { rows } = await client.query<{ v: number | null }>(`SELECT max(version) AS v FROM ${SCHEMA}.migrations`);
    const current = rows[0]?.v ?? 0;
    for (let v = current; v < MIGRATIONS.length; v++) {
      await slowQuery(client, MIGRATIONS[v]);
      await client.query(`INSERT INTO ${SCHEMA}.migrations (version) VALUES ($1)`, [v + 1]);
    }
    await client.query('COMMIT');
    return Math.max(0, MIGRATIONS.length - current);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Columns of a shipped row, in SHIP_SQL's parameter order after $1 (the host id). */
export const SHIP_COLUMNS = COLUMNS.map((c) => c.sql);
/** Times travel as epoch milliseconds (bigint): no date formatting in node nor parsing in PostgreSQL. */
const arrayType = (c: Column) => (c.kind === 'time' ? 'bigint[]' : `${pgType(c)}[]`);
const fromArray = (c: Column) =>
  c.kind === 'time' ? `timestamptz 'epoch' + ${c.sql} * interval '1 millisecond' AS ${c.sql}` : c.sql;
const END = new Set(['ended_at', 'end_reason', 'end_detail', 'complete']);

/** How each column of a row found by its identity is updated: counters never go down, the end is set once. */
function updateSet(c: string): string | null {
  const col = COLUMNS.find((x) => x.sql === c)!;
  if (c === 'run' || c === 'allocation_id' || c === 'started_at') return null; // identity, partition key
  if (col.kind === 'int' && col.key !== null) return `${c} = GREATEST(a.${c}, v.${c})`;
  if (c === 'last_event_at') return `${c} = GREATEST(a.${c}, v.${c})`;
  if (c === 'ended_at') return `${c} = COALESCE(a.ended_at, v.ended_at)`;
  // A record that turned out to be an allocation stays one (the monitor never turns it back).
  if (c === 'kind') return `kind = CASE WHEN a.kind = 'allocation' THEN a.kind ELSE v.kind END`;
  if (END.has(c)) return `${c} = CASE WHEN a.ended_at IS NULL THEN v.${c} ELSE a.${c} END`;
  return `${c} = v.${c}`;
}

/** What the rollup statement needs of a row before and after: kind, billing key, last event, counters. */
const DELTA_COLS = [
  'run',
  'allocation_id',
  'kind',
  'realm',
  'client_id',
  'last_event_at',
  'complete',
  ...COUNTER_COLUMNS,
];
const same = `(n.client_id = o.client_id AND n.realm IS NOT DISTINCT FROM o.realm)`;
const deltaRowNew = [
  HOUR_OF('n.last_event_at'),
  'n.realm',
  'n.client_id',
  'true',
  `${contribAlloc('n')} - CASE WHEN ${same} THEN ${contribAlloc('o')} ELSE 0 END`,
  ...COUNTER_COLUMNS.map((c) => `${contrib('n', c)} - CASE WHEN ${same} THEN ${contrib('o', c)} ELSE 0 END`),
  `${contribIncomplete('n')} - CASE WHEN ${same} THEN ${contribIncomplete('o')} ELSE 0 END`,
];
const deltaRowOld = [
  `CASE WHEN ${same} THEN NULL ELSE ${HOUR_OF('o.last_event_at')} END`,
  'o.realm',
  'o.client_id',
  'false',
  `-${contribAlloc('o')}`,
  ...COUNTER_COLUMNS.map((c) => `-(${contrib('o', c)})`),
  `-${contribIncomplete('o')}`,
];
const DELTA_SUMS = ['allocations', ...COUNTER_COLUMNS, 'incomplete'];
const nonZero = DELTA_SUMS.map((c) => `x.${c} <> 0`).join(' OR ');
const SUMMED = [...DELTA_SUMS.filter((c) => c !== 'incomplete'), 'client_bytes', 'peer_bytes', 'incomplete'];
/** A group's sums as the rollup stores them (with client_bytes and peer_bytes), and whether it adds this host. */
const sumDelta = [
  ...DELTA_SUMS.map((c) => `sum(${c})::bigint AS ${c}`),
  'sum(rcvb + sentb)::bigint AS client_bytes',
  'sum(peer_rcvb + peer_sentb)::bigint AS peer_bytes',
  'bool_or(pos) AS pos',
].join(', ');
/** Insert: this host if it relayed; conflict: the sums added, this host appended once. */
const rollupUpsert = (g: string, key: string) => `
  SELECT ${key
    .split(', ')
    .map((k) => `${g}.${k}`)
    .join(', ')}, ${SUMMED.map((c) => `${g}.${c}`).join(', ')},
         CASE WHEN ${g}.pos THEN 1 ELSE 0 END, CASE WHEN ${g}.pos THEN ARRAY[$1::text] ELSE '{}'::text[] END
    FROM ${g} ORDER BY ${key
      .split(', ')
      .map((k) => `${g}.${k}`)
      .join(', ')}
  ON CONFLICT (${key}) DO UPDATE SET ${SUMMED.map((c) => `${c} = t.${c} + excluded.${c}`).join(', ')},
     hosts = t.hosts + CASE WHEN excluded.hosts = 0 OR $1::text = ANY(t.host_ids) THEN 0 ELSE 1 END,
     host_ids = CASE WHEN excluded.hosts = 0 OR $1::text = ANY(t.host_ids) THEN t.host_ids ELSE t.host_ids || $1::text END`;

/**
 * Where a shipped row can be: its partition key (started_at as first shipped) lies between the
 * started_at and the last event (+ a day) it is sent with now, because the monitor never raises a
 * record's start (it only lowers it, to an earlier `new`) and its latest event never falls a day
 * below a start it had. Bounding the lookup by it lets PostgreSQL probe one or two partitions
 * instead of all (a store of 8 M rows in 13 months shipped at 0.74 of an empty store's rate
 * unbounded, 0.99 bounded).
 */
const LOOKUP_HI = `greatest(v.last_event_at, v.started_at) + interval '1 day'`;
/**
 * The same bounds over the whole batch, as constants (the statement's last two parameters): with
 * them the planner prunes the store to the batch's months when it plans the statement. Without
 * them it planned the lookup and the UPDATE over every partition, at a cost that grew with the
 * store's age (a store of four years, 52 partitions, planned 4× as long as an empty one).
 */
const BATCH_LO = `$${COLUMNS.length + 2}::timestamptz`;
const BATCH_HI = `$${COLUMNS.length + 3}::timestamptz`;
const inBatch = `a.started_at >= ${BATCH_LO} AND a.started_at <= ${BATCH_HI}`;

/**
 * One batch of one host's rows, in one statement: $1 the host id, then one array per column
 * (SHIP_COLUMNS order), then the batch's bounds on the partition key (shipParamsOfColumns).
 * Constant text, so it is prepared once per connection.
 *  - `old`: the rows as they were, found by identity (host_id, run, allocation_id) in whatever
 *    partition holds them (of those LOOKUP_HI allows); `upd` updates those in place (started_at,
 *    the partition key, is left as first shipped: no row ever moves between partitions); `ins`
 *    inserts the others.
 *  - The rollup deltas: new − old per (hour of the new last event, realm, client), upserted with
 *    `x = x + excluded.x` (a billing key that changed moves the old contribution off the old key).
 *  - This host joins an hour's (and a month's) `host_ids` with its first change there; `hosts`
 *    counts them.
 * Identity races cannot arise: one shipper per host runs at a time (a host's rows are written by
 * its own monitor only), so no two statements look up and insert the same identity at once.
 * Rollup rows shared by hosts are upserted in key order, so two hosts' statements never deadlock.
 */
export const SHIP_SQL = `
WITH v AS (
  SELECT ${COLUMNS.map(fromArray).join(', ')}
    FROM unnest(${COLUMNS.map((c, i) => `$${i + 2}::${arrayType(c)}`).join(', ')}) AS v(${SHIP_COLUMNS.join(', ')})
), old AS MATERIALIZED (
  SELECT o.* FROM v, LATERAL (
    SELECT a.started_at, ${DELTA_COLS.map((c) => `a.${c}`).join(', ')} FROM ${SCHEMA}.allocations a
     WHERE a.host_id = $1 AND a.run = v.run AND a.allocation_id = v.allocation_id
       AND a.started_at >= v.started_at AND a.started_at <= ${LOOKUP_HI} AND ${inBatch} LIMIT 1) o
), upd AS (
  UPDATE ${SCHEMA}.allocations a SET ${[...SHIP_COLUMNS.map(updateSet).filter((s) => s !== null), 'shipped_at = now()'].join(', ')}
    FROM old o JOIN v ON v.run = o.run AND v.allocation_id = o.allocation_id
   WHERE a.host_id = $1 AND a.run = o.run AND a.allocation_id = o.allocation_id AND a.started_at = o.started_at
     AND a.started_at >= v.started_at AND a.started_at <= ${LOOKUP_HI} AND ${inBatch}
  RETURNING ${DELTA_COLS.map((c) => `a.${c}`).join(', ')}
), ins AS (
  INSERT INTO ${SCHEMA}.allocations (host_id, ${SHIP_COLUMNS.join(', ')})
  SELECT $1, v.* FROM v WHERE NOT EXISTS (SELECT 1 FROM old o WHERE o.run = v.run AND o.allocation_id = v.allocation_id)
  RETURNING ${DELTA_COLS.join(', ')}
), d AS (
  SELECT x.* FROM upd n JOIN old o USING (run, allocation_id),
    LATERAL (VALUES (${deltaRowNew.join(', ')}), (${deltaRowOld.join(', ')}))
      AS x(hour, realm, client_id, pos, ${DELTA_SUMS.join(', ')})
   WHERE x.hour IS NOT NULL AND (${nonZero})
  UNION ALL
  SELECT ${HOUR_OF('last_event_at')}, realm, client_id, true, 1, ${COUNTER_COLUMNS.join(', ')},
         CASE WHEN complete THEN 0 ELSE 1 END
    FROM ins WHERE kind = 'allocation'
), g AS (
  SELECT hour, realm, client_id, ${sumDelta} FROM d GROUP BY hour, realm, client_id
), hr AS (
  INSERT INTO ${SCHEMA}.client_usage_hourly AS t (hour, realm, client_id, ${SUMMED.join(', ')}, hosts, host_ids)
  ${rollupUpsert('g', 'hour, realm, client_id')}
), m AS (
  SELECT date_trunc('month', hour) AS month, realm, client_id, ${sumDelta} FROM d GROUP BY 1, realm, client_id
), mo AS (
  INSERT INTO ${SCHEMA}.client_usage_monthly AS t (month, realm, client_id, ${SUMMED.join(', ')}, hosts, host_ids)
  ${rollupUpsert('m', 'month, realm, client_id')}
)
SELECT (SELECT count(*) FROM upd)::int AS updated, (SELECT count(*) FROM ins)::int AS inserted`;

/**
 * One column of a batch as a PostgreSQL array literal, built here rather than by pg's generic
 * serializer (which quotes and escapes every element): numbers as they are, text quoted with `\\`
 * and `"` escaped, NULL for null; booleans from 0/1 or true/false, times from epoch ms or Dates.
 */
export function arrayLiteral(kind: Column['kind'], values: readonly unknown[]): string {
  const out = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) out[i] = 'NULL';
    else if (kind === 'text') out[i] = `"${String(v).replace(/["\\]/g, '\\$&')}"`;
    else if (kind === 'bool') out[i] = v === true || v === 1 ? 't' : 'f';
    else if (v instanceof Date) out[i] = String(v.getTime());
    else out[i] = String(v);
  }
  return `{${out.join(',')}}`;
}

const STARTED = SHIP_COLUMNS.indexOf('started_at');
const LAST_EVENT = SHIP_COLUMNS.indexOf('last_event_at');
const epochMs = (v: unknown) => (v instanceof Date ? v.getTime() : Number(v));

/**
 * The batch's bounds on the partition key, as timestamps PostgreSQL plans with (SHIP_SQL's last
 * two parameters): the earliest start, and the latest LOOKUP_HI of its rows.
 */
function batchBounds(columns: readonly (readonly unknown[])[]): [string, string] {
  let lo = Infinity;
  let hi = -Infinity;
  const started = columns[STARTED];
  const last = columns[LAST_EVENT];
  for (let i = 0; i < started.length; i++) {
    const s = epochMs(started[i]);
    lo = Math.min(lo, s);
    hi = Math.max(hi, s, epochMs(last[i]));
  }
  return [new Date(lo).toISOString(), new Date(hi + 86_400_000).toISOString()];
}

/**
 * Parameters of SHIP_SQL from a batch as columns (SHIP_COLUMNS order; times as epoch ms or
 * Dates, complete as a boolean or 0/1): the host id, one array literal per column, the bounds.
 */
export function shipParamsOfColumns(hostId: string, columns: readonly (readonly unknown[])[]): unknown[] {
  return [hostId, ...COLUMNS.map((c, j) => arrayLiteral(c.kind, columns[j])), ...batchBounds(columns)];
}

/** Parameters of SHIP_SQL from rows in SHIP_COLUMNS order. */
export function shipParams(hostId: string, rows: unknown[][]): unknown[] {
  return shipParamsOfColumns(
    hostId,
    COLUMNS.map((_, j) => rows.map((r) => r[j])),
  );
}

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
