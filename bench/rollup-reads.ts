import type pg from 'pg';
import { monthStart } from '../src/export/partitions.js';
import { COUNTER_COLUMNS, ROLLUP_SUMS, SCHEMA, unionHostIds } from '../src/export/pg-schema.js';
import { median, quiesce, type Figures } from './lib.js';

/**
 * The read side of `rollup_choice`, on a store generated as bench/fleet-store.ts generates it:
 * billing from the rolled tables (client_usage_monthly as implemented; a rolled daily table,
 * built here from the hourly rows, as the alternative to today's client_usage_daily view) against
 * views over client_usage_hourly (a monthly view, built here; client_usage_daily as implemented).
 */

const DAY = 86_400_000;
const CLIENTS = 50_000;
/** Timed reads of each variant per kind and round (adjacent, the order rotated each time). */
const READS = 2;

const MONTHLY_VIEW = `${SCHEMA}.bench_monthly_view`;
const DAILY_TABLE = `${SCHEMA}.bench_daily_rolled`;
const sums = ROLLUP_SUMS.map((c) => `sum(${c})::bigint AS ${c}`).join(', ');

/** The monthly view, and the rolled daily table filled from the hourly rows (the shape of client_usage_monthly). */
export async function prepareReads(c: pg.Client): Promise<string[]> {
  await c.query(`CREATE VIEW ${MONTHLY_VIEW} AS
    SELECT date_trunc('month', hour) AS month, realm, client_id, ${sums},
           cardinality(${unionHostIds()})::bigint AS hosts, ${unionHostIds()} AS host_ids
      FROM ${SCHEMA}.client_usage_hourly GROUP BY 1, realm, client_id`);
  await c.query(`SET work_mem = '256MB'`);
  await c.query(
    `CREATE TABLE ${DAILY_TABLE} (LIKE ${SCHEMA}.client_usage_monthly INCLUDING DEFAULTS) WITH (fillfactor = 85)`,
  );
  await c.query(`ALTER TABLE ${DAILY_TABLE} RENAME COLUMN month TO day`);
  await c.query(`INSERT INTO ${DAILY_TABLE} (day, realm, client_id, ${ROLLUP_SUMS.join(', ')}, hosts, host_ids)
    SELECT day, realm, client_id, ${ROLLUP_SUMS.join(', ')}, cardinality(host_ids), host_ids FROM (
      SELECT date_trunc('day', hour) AS day, realm, client_id, ${sums}, ${unionHostIds()} AS host_ids
        FROM ${SCHEMA}.client_usage_hourly GROUP BY 1, realm, client_id) d`);
  await c.query(
    `ALTER TABLE ${DAILY_TABLE} ADD CONSTRAINT bench_daily_key UNIQUE NULLS NOT DISTINCT (day, realm, client_id)`,
  );
  await c.query(`CREATE INDEX bench_daily_client ON ${DAILY_TABLE} (client_id, day)`);
  await c.query(`RESET work_mem`);
  await c.query(`VACUUM ANALYZE ${DAILY_TABLE}`);
  // A variant that reads other figures measures nothing: the view's month and the table's, and
  // the daily view and the rolled days, must hold the same rows.
  const cols = ['realm', 'client_id', ...ROLLUP_SUMS.filter((s) => s !== 'incomplete'), 'hosts'];
  const differ = async (a: string, b: string) => {
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ((${a} EXCEPT ALL ${b}) UNION ALL (${b} EXCEPT ALL ${a})) x`,
    );
    return rows[0].n;
  };
  const month = `'${wall(lastMonth())}'::timestamp`;
  const m = await differ(
    `SELECT ${cols.join(', ')}, host_ids FROM ${SCHEMA}.client_usage_monthly WHERE month = ${month}`,
    `SELECT ${cols.join(', ')}, host_ids FROM ${MONTHLY_VIEW} WHERE month = ${month}`,
  );
  const d = await differ(
    `SELECT day, ${cols.join(', ')}, complete FROM ${SCHEMA}.client_usage_daily`,
    `SELECT day, ${cols.join(', ')}, incomplete = 0 FROM ${DAILY_TABLE}`,
  );
  if (m !== 0 || d !== 0) throw new Error(`rollup_choice: read variants disagree (month ${m} rows, days ${d} rows)`);
  const plan = async (sql: string, values: unknown[]) =>
    (await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, values)).rows.map((r) => r['QUERY PLAN']).join('\n');
  return [
    `monthly view:\n${await plan(monthlySql('view'), [wall(lastMonth())])}`,
    `daily view, one day:\n${await plan(daySql('view'), [wall(lastMonth())])}`,
  ];
}

let end = 0;
export function setEnd(at: number): void {
  end = at;
}
const lastMonth = () => monthStart(end, -1).getTime();
const wall = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');
/** Values as PostgreSQL sends them (a billing export writes them out as they come). */
const AS_TEXT = { getTypeParser: () => (v: string) => v };
const BILLED = `realm, client_id, allocations, hosts, ${COUNTER_COLUMNS.join(', ')}, client_bytes, peer_bytes`;

type Monthly = 'table' | 'view' | 'hour_range';
/** The billing run's statement (bench/fleet-store.ts's monthly()), from each variant. */
function monthlySql(v: Monthly): string {
  if (v === 'table') return `SELECT ${BILLED} FROM ${SCHEMA}.client_usage_monthly WHERE month = $1::timestamp`;
  if (v === 'view') return `SELECT ${BILLED} FROM ${MONTHLY_VIEW} WHERE month = $1::timestamp`;
  // The month as a range of hours (what a view cannot ask of the index on hour; a function could).
  return `SELECT realm, client_id, sum(allocations)::bigint AS allocations, cardinality(${unionHostIds()})::bigint AS hosts,
            ${[...COUNTER_COLUMNS, 'client_bytes', 'peer_bytes'].map((x) => `sum(${x})::bigint AS ${x}`).join(', ')}
       FROM ${SCHEMA}.client_usage_hourly WHERE hour >= $1::timestamp AND hour < $1::timestamp + interval '1 month'
      GROUP BY realm, client_id`;
}
type Daily = 'view' | 'table';
const DAILY_COLS = `day, realm, client_id, allocations, hosts, ${COUNTER_COLUMNS.join(', ')}, client_bytes, peer_bytes`;
const dailyFrom = (v: Daily) =>
  v === 'view'
    ? `(SELECT ${DAILY_COLS}, complete FROM ${SCHEMA}.client_usage_daily)`
    : `(SELECT ${DAILY_COLS}, incomplete = 0 AS complete FROM ${DAILY_TABLE})`;
/** Every client's usage of one day. */
const daySql = (v: Daily) => `SELECT * FROM ${dailyFrom(v)} d WHERE day = $1::timestamp`;
/** One client's daily usage over the last year (bench/fleet-store.ts's daily()). */
const clientYearSql = (v: Daily) =>
  `SELECT * FROM ${dailyFrom(v)} d WHERE client_id = $1 AND day >= $2::timestamp ORDER BY day`;

async function timed(c: pg.Client, text: string, values: unknown[], min: number): Promise<[number, number]> {
  await quiesce(20);
  const t0 = performance.now();
  const { rows } = await c.query({ text, values, rowMode: 'array', types: AS_TEXT });
  const ms = performance.now() - t0;
  if (rows.length < min) throw new Error(`rollup_choice: ${rows.length} rows from ${text.slice(0, 80)}`);
  return [ms, rows.length];
}

/**
 * READS adjacent runs of each variant of one read (the order rotated every time); each variant's
 * median ms, and each variant's median ratio to the first one's adjacent run.
 */
async function compare<V extends string>(
  name: string,
  variants: readonly V[],
  read: (v: V, k: number) => Promise<[number, number]>,
  round: number,
): Promise<Figures> {
  const ms = Object.fromEntries(variants.map((v) => [v, [] as number[]])) as Record<V, number[]>;
  const ratios = Object.fromEntries(variants.map((v) => [v, [] as number[]])) as Record<V, number[]>;
  for (let k = 0; k < READS; k++) {
    const order = (round + k) % 2 ? [...variants].reverse() : variants;
    const got = {} as Record<V, [number, number]>;
    for (const v of order) got[v] = await read(v, round * READS + k);
    const base = variants[0];
    for (const v of variants) {
      if (got[v][1] !== got[base][1])
        throw new Error(`rollup_choice: ${name} ${v} ${got[v][1]} rows, ${base} ${got[base][1]}`);
      ms[v].push(got[v][0]);
      ratios[v].push(got[v][0] / got[base][0]);
    }
  }
  const out: Figures = {};
  for (const v of variants) out[`${name}_${v}_ms`] = median(ms[v]);
  for (const v of variants.slice(1)) out[`${name}_${v}_vs_${variants[0]}`] = median(ratios[v]);
  return out;
}

/** One round of reads: the monthly billing run, one day of every client, one client's year. */
export async function readFigures(c: pg.Client, round: number): Promise<Figures> {
  const month = wall(lastMonth());
  return {
    ...(await compare(
      'monthly',
      ['table', 'view', 'hour_range'] as const,
      (v) => timed(c, monthlySql(v), [month], CLIENTS * 0.9),
      round,
    )),
    ...(await compare(
      'daily_day',
      ['table', 'view'] as const,
      (v, k) => timed(c, daySql(v), [wall(lastMonth() + (k % 28) * DAY)], 1000),
      round,
    )),
    ...(await compare(
      'daily_client_year',
      ['table', 'view'] as const,
      (v, k) => timed(c, clientYearSql(v), [`c${(k * 7919) % CLIENTS}`, wall(end - 365 * DAY)], 1),
      round,
    )),
  };
}
