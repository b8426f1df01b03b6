import type pg from 'pg';
import { LOCK_KEY, SCHEMA, slowQuery } from './pg-schema.js';

/**
 * Partition maintenance of turn_monitor.allocations, run by whichever monitor ships (at start,
 * hourly and when the month changes), one at a time under the migration lock:
 *  - the current month and the next two have a partition (created once however many monitors race
 *    over a month boundary: each waits for the lock, then finds them);
 *  - rows that landed in the default partition move into their month's partition as it is created;
 *  - raw partitions entirely older than `retentionMonths` are detached and dropped whole, except
 *    one still holding an open allocation (a call that outlives the retention keeps its month);
 *  - rollup rows older than `rollupRetentionMonths` are deleted.
 * A month that cannot be created (permissions, disk) is reported by name; its rows wait in the
 * default partition meanwhile, and the other steps still run.
 */

export interface MaintenanceOptions {
  /** Epoch ms: which month is "now". */
  now: number;
  /** null: raw partitions are never dropped. */
  retentionMonths: number | null;
  /** null: rollup rows are never deleted. */
  rollupRetentionMonths: number | null;
  /** Months ahead of the current one that must exist (2). */
  ahead?: number;
}

export interface MaintenanceReport {
  /** Partitions created, by month (YYYY-MM). */
  created: string[];
  /** Rows moved from the default partition into a created month. */
  moved: number;
  /** Partitions detached and dropped, by month. */
  dropped: string[];
  /** Months old enough to drop, kept because an allocation in them is still open. */
  keptOpen: string[];
  /** Rollup rows deleted (hourly and monthly). */
  rollupDeleted: number;
  /** Months whose partition could not be created, with PostgreSQL's reason. */
  failed: { month: string; error: string }[];
}

/** Start of the UTC month of `ms`, `add` months later. */
export function monthStart(ms: number, add = 0): Date {
  const d = new Date(ms);
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + add, 1));
}

export const monthName = (d: Date) => d.toISOString().slice(0, 7);

/** The partitions of turn_monitor.allocations by month (the default partition left out). */
export async function listPartitions(client: pg.Client): Promise<Map<string, string>> {
  const { rows } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = '${SCHEMA}.allocations'::regclass`,
  );
  const out = new Map<string, string>();
  for (const { name } of rows) {
    const m = /^allocations_(\d{4})_(\d{2})$/.exec(name);
    if (m) out.set(`${m[1]}-${m[2]}`, name);
  }
  return out;
}

/** One maintenance pass in one transaction under the advisory lock; each month in a savepoint of its own. */
export async function maintainPartitions(client: pg.Client, opts: MaintenanceOptions): Promise<MaintenanceReport> {
  const report: MaintenanceReport = { created: [], moved: 0, dropped: [], keptOpen: [], rollupDeleted: 0, failed: [] };
  await client.query('BEGIN');
  try {
    await slowQuery(client, 'SELECT pg_advisory_xact_lock(hashtext($1))', [LOCK_KEY]);
    const existing = await listPartitions(client);
    const wanted = new Map<string, Date>();
    for (let i = 0; i <= (opts.ahead ?? 2); i++) {
      const m = monthStart(opts.now, i);
      wanted.set(monthName(m), m);
    }
    // Months of rows waiting in the default partition (a row older than any partition, or one
    // shipped while its month could not be created).
    const waiting = await client.query<{ m: Date }>(
      `SELECT DISTINCT date_trunc('month', started_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m FROM ${SCHEMA}.allocations_default`,
    );
    for (const { m } of waiting.rows) wanted.set(monthName(m), m);
    for (const [name, m] of [...wanted].sort(([a], [b]) => a.localeCompare(b))) {
      if (existing.has(name)) continue;
      await client.query('SAVEPOINT month');
      try {
        const before = await client.query<{ n: string }>(
          `SELECT count(*) AS n FROM ${SCHEMA}.allocations_default WHERE started_at >= $1 AND started_at < $2`,
          [m, monthStart(m.getTime(), 1)],
        );
        const { rows } = await slowQuery<{ part: string | null }>(
          client,
          `SELECT ${SCHEMA}.create_allocations_month($1) AS part`,
          [m],
        );
        await client.query('RELEASE SAVEPOINT month');
        if (rows[0]?.part) {
          report.created.push(name);
          report.moved += Number(before.rows[0].n);
          existing.set(name, rows[0].part);
        }
      } catch (err) {
        await client.query('ROLLBACK TO SAVEPOINT month');
        report.failed.push({ month: name, error: (err as Error).message });
      }
    }
    if (opts.retentionMonths !== null) {
      // Dropped once wholly older than the retention: with 3, a month's partition goes when the
      // month three months after it ends (January's at the start of May).
      const cutoff = monthName(monthStart(opts.now, -opts.retentionMonths));
      for (const [name, table] of [...existing].sort(([a], [b]) => a.localeCompare(b))) {
        if (name >= cutoff) continue;
        const open = await client.query(`SELECT 1 FROM ${SCHEMA}.${table} WHERE ended_at IS NULL LIMIT 1`);
        if (open.rows.length > 0) {
          report.keptOpen.push(name);
          continue;
        }
        await slowQuery(client, `ALTER TABLE ${SCHEMA}.allocations DETACH PARTITION ${SCHEMA}.${table}`);
        await client.query(`DROP TABLE ${SCHEMA}.${table}`);
        await client.query(
          `INSERT INTO ${SCHEMA}.dropped_partitions (month) VALUES ($1::timestamp) ON CONFLICT DO NOTHING`,
          [`${name}-01`],
        );
        report.dropped.push(name);
      }
    }
    if (opts.rollupRetentionMonths !== null) {
      const cutoff = monthStart(opts.now, -opts.rollupRetentionMonths);
      // timestamp (UTC) columns: compare with the cutoff as UTC wall time.
      const utc = cutoff.toISOString().slice(0, 19).replace('T', ' ');
      for (const [table, col] of [
        ['client_usage_hourly', 'hour'],
        ['client_usage_monthly', 'month'],
      ]) {
        const r = await slowQuery(client, `DELETE FROM ${SCHEMA}.${table} WHERE ${col} < $1::timestamp`, [utc]);
        report.rollupDeleted += r.rowCount ?? 0;
      }
    }
    await client.query('COMMIT');
    return report;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
