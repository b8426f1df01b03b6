import pg from 'pg';
import { COLUMNS, COUNTERS, type AllocationRow } from '../stats/allocation-row.js';
import { timed, usageFromRows, type TimedRow, type UsageFilter, type UsageView } from '../stats/query.js';
import { describePgError, secretsOf } from './pg-url.js';
import { COUNTER_COLUMNS, SCHEMA } from './pg-schema.js';

export interface FleetFilter extends UsageFilter {
  hostId?: string;
}

/** Without --from: the last 24 hours (the raw views need a window, so old partitions are pruned). */
export const DEFAULT_WINDOW_MS = 86_400_000;

/** A row of turn_monitor.allocations in the shape of `usage --format json`, plus hostId first. */
function fromPg(r: Record<string, unknown>): TimedRow {
  const out: Record<string, unknown> = { hostId: r.host_id };
  for (const c of COLUMNS) {
    if (c.key === null) continue;
    const v = r[c.sql];
    out[c.key] = v === null ? null : c.kind === 'time' ? (v as Date).toISOString() : c.kind === 'int' ? Number(v) : v;
  }
  const start = (r.started_at as Date).getTime();
  const end = r.ended_at === null ? null : (r.ended_at as Date).getTime();
  return timed(out as unknown as AllocationRow & { hostId: string }, start, end);
}

/** The window a fleet read covers: [from, to), from defaulting to 24 hours before `to` (now). */
export function fleetWindow(f: UsageFilter, now: number): { from: number; to: number } {
  const to = f.to ?? now;
  return { from: f.from ?? Math.min(to, now) - DEFAULT_WINDOW_MS, to };
}

/** UTC wall time of an epoch ms, for the rollups' `timestamp` columns. */
export const utcWall = (ms: number) => new Date(ms).toISOString().slice(0, 23).replace('T', ' ');

/**
 * Raw rows live in [from, to): `started_at < to` prunes the partitions after the window; the ones
 * before it are pruned from the oldest start of an allocation still live at `from` (open ones
 * through the partial index, closed ones through the BRIN index on ended_at).
 */
async function rawRows(client: pg.Client, kind: string, f: FleetFilter, from: number, to: number) {
  const params: unknown[] = [kind, new Date(from), new Date(to)];
  const where = ['kind = $1', 'started_at < $3', '(ended_at IS NULL OR ended_at >= $2)'];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replaceAll('?', `$${params.length}`));
  };
  if (f.user !== undefined) add('(client_id = ? OR username = ?)', f.user);
  if (f.hostId !== undefined) add('host_id = ?', f.hostId);
  // The oldest start among allocations live at `from`, in two probes an index answers: open ones
  // (the partial index, first entry per partition), closed ones ending at or after `from` (BRIN
  // on ended_at; OFFSET 0 keeps min() from walking the started_at index of every partition,
  // which read whole partitions: 6.9 s on 8 M rows).
  const lo = await client.query<{ lo: Date | null }>(
    `SELECT least(
       (SELECT min(started_at) FROM ${SCHEMA}.allocations WHERE ended_at IS NULL AND started_at < $1),
       (SELECT min(s) FROM (SELECT started_at AS s FROM ${SCHEMA}.allocations
                             WHERE ended_at >= $1 AND started_at < $1 OFFSET 0) closed)) AS lo`,
    [new Date(from)],
  );
  params.push(lo.rows[0]?.lo && lo.rows[0].lo.getTime() < from ? lo.rows[0].lo : new Date(from));
  where.push(`started_at >= $${params.length}`);
  const { rows } = await client.query(
    `SELECT * FROM ${SCHEMA}.allocations WHERE ${where.join(' AND ')} ORDER BY started_at, host_id, run, allocation_id`,
    params,
  );
  return rows;
}

/** Sums (numeric) and counts (bigint) as numbers: exact up to 2^53, far above any counter here. */
const NUMBERS = {
  getTypeParser: (oid: number, format?: string) =>
    oid === 1700 || oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text'),
};

/**
 * Users from the hourly rollup: what each client relayed in the hours of [from, to) (the hour
 * `from` falls in included), summed across hosts; hostId lists the hosts it used then. The rows
 * come out of PostgreSQL in their final shape (camelCase names, numbers).
 */
async function userRows(client: pg.Client, f: FleetFilter, from: number, to: number) {
  const params: unknown[] = [utcWall(from), utcWall(to)];
  const where = [`hour >= date_trunc('hour', $1::timestamp)`, `hour < $2::timestamp`];
  if (f.user !== undefined) {
    params.push(f.user);
    where.push(`client_id = $${params.length}`);
  }
  // One host's share is not in the rollup (it sums hosts): with --host, the clients that used it.
  let having = '';
  if (f.hostId !== undefined) {
    params.push(f.hostId);
    having = `HAVING $${params.length}::text = ANY(${SCHEMA}.hosts_union(host_ids))`;
  }
  const iso = (col: string) => `to_char(${col}, 'YYYY-MM-DD"T"HH24:MI:SS.000"Z"')`;
  const { rows } = await client.query({
    text: `SELECT array_to_string(d.ids, ',') AS "hostId", g.realm, g.client_id AS "clientId",
                  cardinality(d.ids) AS hosts, g.allocations,
                  ${COUNTER_COLUMNS.map((c, i) => `g.${c} AS "${COUNTERS[i]}"`).join(', ')},
                  g.peer_rcvb + g.peer_sentb > 0 AS relayed, g.incomplete = 0 AS complete,
                  ${iso('g.first_hour')} AS "firstHour", ${iso('g.last_hour')} AS "lastHour"
             FROM (SELECT realm, client_id, ${SCHEMA}.hosts_union(host_ids) AS host_ids, sum(allocations) AS allocations,
                          ${COUNTER_COLUMNS.map((c) => `sum(${c}) AS ${c}`).join(', ')}, sum(incomplete) AS incomplete,
                          min(hour) AS first_hour, max(hour) AS last_hour
                     FROM ${SCHEMA}.client_usage_hourly WHERE ${where.join(' AND ')}
                    GROUP BY realm, client_id ${having}) g,
                  LATERAL (SELECT CASE WHEN cardinality(g.host_ids) < 2 THEN g.host_ids
                                       ELSE ARRAY(SELECT DISTINCT h FROM unnest(g.host_ids) h ORDER BY h) END AS ids) d
            ORDER BY g.realm, g.client_id`,
    values: params,
    types: NUMBERS,
  });
  return rows as Record<string, unknown>[];
}

/**
 * `usage --fleet`: every host's usage from PostgreSQL, over a window (default: the last 24 hours).
 * allocation, session and unattributed read the raw rows live in the window (sessions per host);
 * user reads the hourly rollup: what each client relayed in the window's hours, across hosts.
 */
export async function queryFleetUsage(
  url: string,
  view: UsageView,
  f: FleetFilter,
  now = Date.now(),
): Promise<Record<string, unknown>[]> {
  const secrets = secretsOf(url);
  // A day of the fleet's users groups ~20,000 hourly rows: in memory, not in a temporary file.
  let client: pg.Client | null = null;
  try {
    // Inside the try: pg reads sslrootcert & co. when the client is made.
    client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: 10_000,
      query_timeout: 60_000,
      options: '-c work_mem=64MB',
    });
    client.on('error', () => undefined);
    await client.connect();
    const { from, to } = fleetWindow(f, now);
    if (view === 'user') return await userRows(client, f, from, to);
    const rows = await rawRows(client, view === 'unattributed' ? 'unattributed' : 'allocation', f, from, to);
    return usageFromRows(rows.map(fromPg), view, now);
  } catch (err) {
    throw new Error(describePgError(err, secrets, url));
  } finally {
    await client?.end().catch(() => undefined);
  }
}
