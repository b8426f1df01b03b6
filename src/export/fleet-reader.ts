import pg from 'pg';
import { COLUMNS, type AllocationRow } from '../stats/allocation-row.js';
import { timed, usageFromRows, type TimedRow, type UsageFilter, type UsageView } from '../stats/query.js';
import { describePgError, secretsOf } from './pg-url.js';
import { SCHEMA } from './pg-schema.js';

export interface FleetFilter extends UsageFilter {
  hostId?: string;
}

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

/**
 * `usage --fleet`: the same views as `usage`, over every host's records in PostgreSQL. Sessions
 * are per host; the user view sums across hosts.
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
    const where = ['kind = $1'];
    const params: unknown[] = [view === 'unattributed' ? 'unattributed' : 'allocation'];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replaceAll('?', `$${params.length}`));
    };
    if (f.user !== undefined) add('(client_id = ? OR username = ?)', f.user);
    if (f.hostId !== undefined) add('host_id = ?', f.hostId);
    if (f.to !== undefined) add('started_at < ?', new Date(f.to));
    if (f.from !== undefined) add('(ended_at IS NULL OR ended_at >= ?)', new Date(f.from));
    const { rows } = await client.query(
      `SELECT * FROM ${SCHEMA}.allocations WHERE ${where.join(' AND ')} ORDER BY started_at, host_id, run, allocation_id`,
      params,
    );
    return usageFromRows(rows.map(fromPg), view, now);
  } catch (err) {
    throw new Error(describePgError(err, secrets));
  } finally {
    await client.end().catch(() => undefined);
  }
}
