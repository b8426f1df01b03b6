import pg from 'pg';
import { COLUMNS, COUNTERS, type AllocationRow } from '../stats/allocation-row.js';
import { timed, usageFromRows, type TimedRow, type UsageFilter, type UsageView } from '../stats/query.js';
import { describePgError, secretsOf } from './pg-url.js';
import { COUNTER_COLUMNS, sameRealm, SCHEMA } from './pg-schema.js';

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
 * `from` falls in included), summed across hosts; hostId lists the hosts it used then.
 */
async function userRows(client: pg.Client, f: FleetFilter, from: number, to: number) {
  const params: unknown[] = [utcWall(from), utcWall(to)];
  let extra = '';
  if (f.user !== undefined) {
    params.push(f.user);
    extra += ` AND client_id = $${params.length}`;
  }
  let hostFilter = '';
  if (f.hostId !== undefined) {
    // One host's share is not in the rollup (it sums hosts): only the clients that used it.
    params.push(f.hostId);
    hostFilter = ` AND host_id = $${params.length}`;
  }
  const window = `hour >= date_trunc('hour', $1::timestamp) AND hour < $2::timestamp${extra}`;
  const { rows } = await client.query<Record<string, unknown>>(
    `WITH u AS (
       SELECT realm, client_id, sum(allocations)::bigint AS allocations,
              ${COUNTER_COLUMNS.map((c) => `sum(${c})::bigint AS ${c}`).join(', ')},
              sum(incomplete)::bigint AS incomplete,
              to_char(min(hour), 'YYYY-MM-DD"T"HH24:MI:SS.000"Z"') AS first_hour,
              to_char(max(hour), 'YYYY-MM-DD"T"HH24:MI:SS.000"Z"') AS last_hour
         FROM ${SCHEMA}.client_usage_hourly WHERE ${window} GROUP BY realm, client_id
     ), h AS (
       SELECT realm, client_id, string_agg(DISTINCT host_id, ',' ORDER BY host_id) AS host_ids,
              count(DISTINCT host_id) AS hosts
         FROM ${SCHEMA}.client_hosts_hourly WHERE ${window}${hostFilter} GROUP BY realm, client_id
     )
     SELECT u.*, h.host_ids, h.hosts FROM u ${f.hostId === undefined ? 'LEFT' : ''} JOIN h
         ON h.client_id = u.client_id AND ${sameRealm('h', 'u')}
      ORDER BY u.realm, u.client_id`,
    params,
  );
  return rows.map((r) => {
    const out: Record<string, unknown> = {
      hostId: r.host_ids ?? '',
      realm: r.realm,
      clientId: r.client_id,
      hosts: Number(r.hosts ?? 0),
      allocations: Number(r.allocations),
    };
    COUNTERS.forEach((k, i) => (out[k] = Number(r[COUNTER_COLUMNS[i]])));
    out.relayed = (out.peerRcvb as number) + (out.peerSentb as number) > 0;
    out.complete = Number(r.incomplete) === 0;
    out.firstHour = r.first_hour;
    out.lastHour = r.last_hour;
    return out;
  });
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
