import pg from 'pg';
import { COLUMNS, COUNTERS, type AllocationRow } from '../stats/allocation-row.js';
import { timed, usageFromRows, type TimedRow, type UsageFilter, type UsageView } from '../stats/query.js';
import { describePgError, secretsOf } from './pg-url.js';
import { COUNTER_COLUMNS, SCHEMA, unionHostIds } from './pg-schema.js';

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
  const lo = await client.query<{ lo: Date | null }>(
    `SELECT min(started_at) AS lo FROM ${SCHEMA}.allocations WHERE ${where.join(' AND ')} AND started_at < $2`,
    params,
  );
  params.push(lo.rows[0]?.lo && lo.rows[0].lo.getTime() < from ? lo.rows[0].lo : new Date(from));
  where.push(`started_at >= $${params.length}`);
  const { rows } = await client.query(
    `SELECT * FROM ${SCHEMA}.allocations WHERE ${where.join(' AND ')} ORDER BY started_at, host_id, run, allocation_id`,
    params,
  );
  return rows;
}

/**
 * Users from the hourly rollup: what each client relayed in the hours of [from, to) (the hour
 * `from` falls in included), summed across hosts; hostId lists the hosts it used then. PostgreSQL
 * builds the rows as one JSON array (one parse here instead of a value per field).
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
  const hostIds = unionHostIds();
  const { rows } = await client.query<{ users: Record<string, unknown>[] | null }>(
    `SELECT json_agg(u ORDER BY u.realm, u."clientId") AS users FROM (
       SELECT array_to_string(${hostIds}, ',') AS "hostId", realm, client_id AS "clientId",
              cardinality(${hostIds}) AS hosts, sum(allocations) AS allocations,
              ${COUNTER_COLUMNS.map((c, i) => `sum(${c}) AS "${COUNTERS[i]}"`).join(', ')},
              sum(peer_rcvb + peer_sentb) > 0 AS relayed, sum(incomplete) = 0 AS complete,
              to_char(min(hour), 'YYYY-MM-DD"T"HH24:MI:SS.000"Z"') AS "firstHour",
              to_char(max(hour), 'YYYY-MM-DD"T"HH24:MI:SS.000"Z"') AS "lastHour"
         FROM ${SCHEMA}.client_usage_hourly WHERE ${where.join(' AND ')}
        GROUP BY realm, client_id ${having}) u`,
    params,
  );
  return rows[0]?.users ?? [];
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
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000, query_timeout: 60_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { from, to } = fleetWindow(f, now);
    if (view === 'user') return await userRows(client, f, from, to);
    const rows = await rawRows(client, view === 'unattributed' ? 'unattributed' : 'allocation', f, from, to);
    return usageFromRows(rows.map(fromPg), view, now);
  } catch (err) {
    throw new Error(describePgError(err, secrets));
  } finally {
    await client.end().catch(() => undefined);
  }
}
