import pg from 'pg';
import { maintainPartitions } from '../src/export/partitions.js';
import { COUNTER_COLUMNS, migrate, SCHEMA, SHIP_COLUMNS, SHIP_SQL, shipParams } from '../src/export/pg-schema.js';
import { startPostgres, type Postgres } from '../test/harness/postgres.js';
import { generate } from './fleet-store.js';
import { alternate, quiesce, rateFigures, type Benchmark, type Side, type Timed } from './lib.js';
import { prepareReads, readFigures, setEnd } from './rollup-reads.js';
import { RAW_SHIP_SQL, TRIGGER_SQL } from './rollup-trigger.js';
import { fleetBatches, type Batch, type FleetLoad } from './rollup-workload.js';

const HOUR = 3_600_000;
const BATCH = 500;
/** Batches per slice (5,000 rows), adjacent pairs of slices per round (30,000 rows per side). */
const SLICE_BATCHES = 10;
const PAIRS = 6;
const WARMUP = 1;
const ROUNDS = 7;
/** The fleet's first 80 minutes (every host's first 27 batches; calls last up to an hour), shipped untimed into both stores first. */
const FIRST_HOUR_BATCHES = 108;
/** Raw rows of the read store: the last quarter of bench/fleet-store.ts's year (its 2 M store). */
const READ_ROWS = 2_000_000;

/** `ours` ships with SHIP_SQL (rollups in the statement), `bare` with RAW_SHIP_SQL into a store whose trigger rolls up. */
const DBS: Record<Side, string> = { ours: 'rollup_statement', bare: 'rollup_trigger' };
const SQL: Record<Side, string> = { ours: SHIP_SQL, bare: RAW_SHIP_SQL };

let postgres: Postgres;
const ship = {} as Record<Side, pg.Client>;
let reads: pg.Client;
let batches: Batch[] = [];
let nextBatch = 0;
let firstSends = 0;
let shippedRows = 0;

async function connect(h: { onCleanup(fn: () => Promise<void>): void }, db: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: postgres.url.replace(/\/postgres$/, `/${db}`) });
  c.on('error', () => undefined);
  await c.connect();
  h.onCleanup(() => c.end());
  return c;
}

/** One batch into one side's store; both sides must report the same rows updated and inserted. */
async function shipBatch(side: Side, b: Batch, params: unknown[]): Promise<void> {
  const { rows } = await ship[side].query<{ updated: number; inserted: number }>({
    name: 'rollup_choice_ship',
    text: SQL[side],
    values: params,
  });
  if (rows[0].updated + rows[0].inserted !== b.rows.length || rows[0].inserted !== b.firstSends)
    throw new Error(
      `rollup_choice: ${side} updated ${rows[0].updated}, inserted ${rows[0].inserted} of ${b.rows.length}`,
    );
}

/** Rows in a canonical text (shipped_at left out: the time of shipping), hashed. */
async function digest(c: pg.Client, table: string, cols: string, order: string): Promise<string> {
  const { rows } = await c.query<{ n: number; h: string }>(
    `SELECT count(*)::int AS n, md5(string_agg((${cols})::text, '|' ORDER BY ${order})) AS h FROM ${SCHEMA}.${table}`,
  );
  return `${rows[0].n} ${rows[0].h}`;
}

/**
 * Both stores hold the same raw rows and the same rollups (every column, host ids included),
 * and the rollups add up to the raw rows' counters per client, and the months to their hours:
 * a variant that computes something else measures nothing.
 */
async function verify(): Promise<void> {
  const raw = ['host_id', ...SHIP_COLUMNS].join(', ');
  const tables: [string, string, string][] = [
    ['allocations', raw, 'host_id, run, allocation_id'],
    ['client_usage_hourly', 't.*', 'hour, realm, client_id'],
    ['client_usage_monthly', 't.*', 'month, realm, client_id'],
  ];
  for (const [table, cols, order] of tables) {
    const a = await digest(ship.ours, `${table} t`, cols, order);
    const b = await digest(ship.bare, `${table} t`, cols, order);
    if (a !== b) throw new Error(`rollup_choice: ${table} differs between statement (${a}) and trigger (${b})`);
  }
  const counters = COUNTER_COLUMNS.map((c) => `sum(${c})::bigint`).join(', ');
  const invariant = async (a: string, b: string) => {
    const { rows } = await ship.ours.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ((${a} EXCEPT ALL ${b}) UNION ALL (${b} EXCEPT ALL ${a})) x`,
    );
    return rows[0].n;
  };
  const perClient = await invariant(
    `SELECT realm, client_id, sum(allocations)::bigint, ${counters} FROM ${SCHEMA}.client_usage_hourly GROUP BY 1, 2`,
    `SELECT realm, client_id, count(*)::bigint, ${counters} FROM ${SCHEMA}.allocations WHERE kind = 'allocation' GROUP BY 1, 2`,
  );
  const perMonth = await invariant(
    `SELECT date_trunc('month', hour), realm, client_id, ${counters} FROM ${SCHEMA}.client_usage_hourly GROUP BY 1, 2, 3`,
    `SELECT month, realm, client_id, ${counters} FROM ${SCHEMA}.client_usage_monthly GROUP BY 1, 2, 3`,
  );
  if (perClient !== 0 || perMonth !== 0)
    throw new Error(`rollup_choice: rollup ≠ raw rows for ${perClient} clients, months ≠ hours for ${perMonth}`);
}

/** Ship the next slices in adjacent pairs, statement and trigger alternating (ABBA), both from the same state. */
async function throughput(): Promise<ReturnType<typeof rateFigures>> {
  for (const side of ['ours', 'bare'] as const)
    await ship[side].query(
      `VACUUM ANALYZE ${SCHEMA}.allocations, ${SCHEMA}.client_usage_hourly, ${SCHEMA}.client_usage_monthly`,
    );
  await ship.ours.query('CHECKPOINT');
  let slice: { b: Batch; params: unknown[] }[] = [];
  let first = 0;
  const pairs = await alternate(
    PAIRS,
    async (side): Promise<Timed> => {
      await quiesce(20);
      const t0 = performance.now();
      for (const { b, params } of slice) await shipBatch(side, b, params);
      return { wall: (performance.now() - t0) / 1000 };
    },
    async () => {
      slice = batches
        .slice(nextBatch, nextBatch + SLICE_BATCHES)
        .map((b) => ({ b, params: shipParams(b.host, b.rows) }));
      if (slice.length < SLICE_BATCHES) throw new Error('rollup_choice: out of batches');
      nextBatch += SLICE_BATCHES;
      first += slice.reduce((s, x) => s + x.b.firstSends, 0);
    },
  );
  firstSends += first;
  shippedRows += PAIRS * SLICE_BATCHES * BATCH;
  return rateFigures('rows', SLICE_BATCHES * BATCH, pairs);
}

/**
 * rollup_choice (issue 28): the two choices the rollups were built on, measured against their
 * alternatives in the same run. Writes: ship throughput with the rollups maintained by the
 * shipper's statement (SHIP_SQL, as the product runs it) against the same raw upsert with a
 * row-level trigger doing the same arithmetic, same batches into stores of the same state.
 * Reads: the monthly billing run from the rolled client_usage_monthly against a view over the
 * hourly rows; the daily view against a rolled daily table.
 */
export const rollupChoice: Benchmark = {
  name: 'rollup_choice',
  goals: {
    statement_vs_trigger: '≥ 1 (the implemented choice)',
    monthly_view_vs_table: '≥ 1 (the implemented choice)',
  },
  warmup: WARMUP,
  rounds: ROUNDS,
  async setup(h) {
    postgres = await startPostgres(h, { shared_buffers: '1GB', max_wal_size: '8GB', checkpoint_timeout: '30min' });
    const end = Math.floor(Date.now() / HOUR) * HOUR;
    setEnd(end);
    const admin = await connect(h, 'postgres');
    for (const db of [...Object.values(DBS), 'rollup_reads']) await admin.query(`CREATE DATABASE ${db}`);
    const t0 = Date.now();
    reads = await connect(h, 'rollup_reads');
    await generate(reads, READ_ROWS, end);
    const plans = await prepareReads(reads);
    console.log(
      `rollup_choice: read store generated in ${Math.round((Date.now() - t0) / 1000)} s\n${plans.join('\n')}`,
    );

    // The fleet's timeline starts three days before the read store's end (partitions for its month and the next two).
    const load: FleetLoad = { hosts: 4, everyMs: 300, t0: end - 72 * HOUR, batchSize: BATCH };
    batches = fleetBatches(load, FIRST_HOUR_BATCHES + (WARMUP + ROUNDS) * PAIRS * SLICE_BATCHES);
    if (batches[0].rows[0].length !== SHIP_COLUMNS.length)
      throw new Error('rollup_choice: rows do not match SHIP_COLUMNS');
    for (const side of ['ours', 'bare'] as const) {
      const c = (ship[side] = await connect(h, DBS[side]));
      await migrate(c);
      await maintainPartitions(c, { now: load.t0, retentionMonths: null, rollupRetentionMonths: null });
      if (side === 'bare') await c.query(TRIGGER_SQL);
      const { rows: parts } = await c.query<{ t: string }>(
        `SELECT inhrelid::regclass::text AS t FROM pg_inherits WHERE inhparent = '${SCHEMA}.allocations'::regclass`,
      );
      // An autovacuum woken by one side's slice would run inside the other's; each round vacuums both first.
      for (const t of [...parts.map((p) => p.t), `${SCHEMA}.client_usage_hourly`, `${SCHEMA}.client_usage_monthly`])
        await c.query(`ALTER TABLE ${t} SET (autovacuum_enabled = false)`);
      for (const b of batches.slice(0, FIRST_HOUR_BATCHES)) await shipBatch(side, b, shipParams(b.host, b.rows));
    }
    nextBatch = FIRST_HOUR_BATCHES;
    await verify();
  },
  async round(_h, round) {
    const w = await throughput();
    // Both stores compared after the warm-up round and after the last (each look reads every row: seconds).
    if (round === 0 || round === WARMUP + ROUNDS - 1) await verify();
    return {
      statement_vs_trigger: w.ratio,
      statement_rows_s: w.ours_rows_s,
      trigger_rows_s: w.bare_rows_s,
      first_send_share: firstSends / shippedRows,
      ...(await readFigures(reads, round)),
    };
  },
};
