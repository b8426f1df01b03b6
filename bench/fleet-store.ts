import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { queryFleetUsage } from '../src/export/fleet-reader.js';
import { Outbox } from '../src/export/outbox.js';
import { maintainPartitions, monthStart } from '../src/export/partitions.js';
import { COUNTER_COLUMNS, migrate, monthlyFromHourly, rollupFromRaw, SHIP_COLUMNS } from '../src/export/pg-schema.js';
import { Shipper } from '../src/export/shipper.js';
import { UsageStore } from '../src/stats/store.js';
import { startPostgres, type Postgres } from '../test/harness/postgres.js';
import { record } from './export.js';
import { median, quiesce, type Benchmark, type Figures } from './lib.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/**
 * The issue's 2 M store (200 hosts, 50,000 clients, one year) and the same fleet after four years
 * (8 M rows, nothing dropped): the 8 M store is older, not busier, so every read's window holds
 * the same rows in both, and the ratio is what the store's age costs.
 */
const SIZES = { '2m': 2_000_000, '8m': 8_000_000 } as const;
type Size = keyof typeof SIZES;
const FLEET = { rowsPerYear: 2_000_000, hosts: 200 };
const CLIENTS = 50_000;
const CHUNK = 1_000_000;
/** Timed reads of each kind per store and round (the round's figure is their median). */
const READS = 5;
/** Export: rows per slice, slices per side and round, batch size. */
const SLICE = 5_000;
const SLICES = 6;
const BATCH = 500;

let postgres: Postgres;
let end = 0;
const clients = {} as Record<Size | 'empty', pg.Client>;
const urls = {} as Record<Size | 'empty', string>;

/**
 * A store of `rows` raw allocations generated server-side: `hosts` hosts and 50,000 clients,
 * `rowsPerYear` allocations a year spread evenly up to `end`, lasting 0–60 min; its monthly
 * partitions, and the rollups built from the rows as the v1 migration builds them (each
 * allocation in the hour of its last event).
 */
export async function generate(
  c: pg.Client,
  rows: number,
  endAt: number,
  fleet: { rowsPerYear: number; hosts: number } = { rowsPerYear: 8_000_000, hosts: 500 },
): Promise<void> {
  await migrate(c);
  const span = (rows / fleet.rowsPerYear) * 365 * DAY;
  const start = endAt - span;
  for (let m = monthStart(start); m.getTime() < endAt; m = monthStart(m.getTime(), 1))
    await c.query('SELECT turn_monitor.create_allocations_month($1)', [m]);
  await maintainPartitions(c, { now: endAt, retentionMonths: null, rollupRetentionMonths: null });
  await c.query(`SET work_mem = '256MB'`);
  for (let from = 0; from < rows; from += CHUNK) {
    await c.query(
      `INSERT INTO turn_monitor.allocations (host_id, allocation_id, run, kind, realm, username, client_id, transport,
         local, remote, lifetime, started_at, ended_at, last_event_at, end_reason, end_detail,
         ${COUNTER_COLUMNS.join(', ')}, complete)
       SELECT 'host-' || (i * 40503 % ${fleet.hosts}), lpad(i::text, 18, '0'), 'generated', 'allocation', 'fleet.local',
              '1795348399:c' || (i * 2654435761 % ${CLIENTS}), 'c' || (i * 2654435761 % ${CLIENTS}), 'UDP', NULL, NULL, 600,
              s, s + d, s + d, 'deleted', NULL,
              10 + i % 90, 1000 + i % 9000, 10 + i % 80, 1000 + i % 8000, i % 70, i % 7000, i % 60, i % 6000, true
         FROM generate_series($1::bigint, $2::bigint) i,
              LATERAL (SELECT to_timestamp(($3::float8 + i * $4::float8) / 1000) AS s,
                              ((i * 7919) % 3600) * interval '1 second' AS d) x`,
      [from, Math.min(rows, from + CHUNK) - 1, start, span / rows],
    );
  }
  for (const sql of rollupFromRaw()) await c.query(sql);
  await c.query(monthlyFromHourly());
  await c.query('VACUUM ANALYZE');
}

const wall = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace('T', ' ');

/** Values as PostgreSQL sends them (a billing export writes them out as they come). */
const AS_TEXT = { getTypeParser: () => (v: string) => v };

/**
 * A monthly billing run: every client's totals for the last full month, read as a billing export
 * streams them (values as sent, no order asked: sorting 50,000 rows is the reader's choice, and
 * the planner's pick between scan + sort and an index in order made the smaller store the slower).
 */
async function monthly(size: Size): Promise<number> {
  const month = monthStart(end, -1).getTime();
  const t0 = performance.now();
  const { rows } = await clients[size].query({
    text: `SELECT realm, client_id, allocations, hosts, ${COUNTER_COLUMNS.join(', ')}, client_bytes, peer_bytes
             FROM turn_monitor.client_usage_monthly WHERE month = $1::timestamp`,
    values: [wall(month)],
    rowMode: 'array',
    types: AS_TEXT,
  });
  const ms = performance.now() - t0;
  if (rows.length < CLIENTS * 0.9) throw new Error(`monthly billing: ${rows.length} clients`);
  return ms;
}

/** One client's daily usage over the last year. */
async function daily(size: Size, k: number): Promise<number> {
  const t0 = performance.now();
  const { rows } = await clients[size].query(
    `SELECT * FROM turn_monitor.client_usage_daily WHERE client_id = $1 AND day >= $2::timestamp ORDER BY day`,
    [`c${(k * 7919) % CLIENTS}`, wall(end - 365 * DAY)],
  );
  const ms = performance.now() - t0;
  if (rows.length === 0) throw new Error('daily: no rows');
  return ms;
}

/** client_usage_daily for one day of the last full month: every client's row of that day. */
async function dayAll(size: Size, k: number): Promise<number> {
  const day = monthStart(end, -1).getTime() + (k % 28) * DAY;
  const t0 = performance.now();
  const { rows } = await clients[size].query({
    text: `SELECT * FROM turn_monitor.client_usage_daily WHERE day = $1::timestamp`,
    values: [wall(day)],
    rowMode: 'array',
    types: AS_TEXT,
  });
  const ms = performance.now() - t0;
  if (rows.length < 1000) throw new Error(`daily, one day: ${rows.length} clients`);
  return ms;
}

/** `usage --fleet --by user` for one whole day of the last full month (its own connection, as the CLI). */
async function userDay(size: Size, k: number): Promise<number> {
  const from = monthStart(end, -1).getTime() + (k % 28) * DAY;
  const t0 = performance.now();
  const rows = await queryFleetUsage(urls[size], 'user', { from, to: from + DAY });
  const ms = performance.now() - t0;
  if (rows.length < 1000) throw new Error(`user day: ${rows.length} users`);
  return ms;
}

/** Each kind of read READS times on both stores, alternating which goes first; medians. */
async function reads(round: number): Promise<Figures> {
  const out: Figures = {};
  const kinds: [string, (size: Size, k: number) => Promise<number>][] = [
    ['monthly', (s) => monthly(s)],
    ['daily', daily],
    ['day_all', dayAll],
    ['user_day', userDay],
  ];
  for (const [name, read] of kinds) {
    const ms: Record<Size, number[]> = { '2m': [], '8m': [] };
    for (let k = 0; k < READS; k++) {
      const order: Size[] = (round + k) % 2 ? ['2m', '8m'] : ['8m', '2m'];
      for (const size of order) {
        await quiesce(20);
        ms[size].push(await read(size, round * READS + k));
      }
    }
    out[`${name}_ms_2m`] = median(ms['2m']);
    out[`${name}_ms_8m`] = median(ms['8m']);
    out[`${name}_ratio`] = out[`${name}_ms_8m`] / out[`${name}_ms_2m`];
  }
  return out;
}

/** The export's side of an aged store: a monitor's outbox shipping into the 8 M store and into an empty one. */
interface ShipSide {
  db: Database.Database;
  shipper: Shipper;
  outbox: Outbox;
}
const ships = {} as Record<'8m' | 'empty', ShipSide>;
let rowsInMemory: unknown[][] = [];
let slices = 0;

/** The export benchmark's record, two days before the stores' end (a month both stores hold). */
function shifted(i: number) {
  const r = record(i);
  const by = end - 2 * DAY - record(0).startedAt;
  return {
    ...r,
    startedAt: r.startedAt + by,
    endedAt: r.endedAt! + by,
    lastEventAt: r.lastEventAt + by,
    deletedAt: r.deletedAt! + by,
  };
}

async function shipSide(h: { dir: string }, target: '8m' | 'empty'): Promise<ShipSide> {
  const file = path.join(h.dir, `export-${target}.db`);
  const store = new UsageStore(file);
  store.write(Array.from({ length: SLICE }, (_, i) => shifted(i)));
  store.close();
  const outbox = new Outbox(file);
  if (rowsInMemory.length === 0)
    rowsInMemory = outbox
      .take(SLICE)
      .map(({ row }) =>
        SHIP_COLUMNS.map((c) => (/_at$/.test(c) && row[c] !== null ? new Date(row[c] as number) : row[c])),
      );
  const db = new Database(file);
  db.exec('DELETE FROM export_outbox');
  const shipper = new Shipper(
    outbox,
    { url: urls[target], hostId: 'synthetic', intervalMs: 3_600_000, batchSize: BATCH, secrets: [] },
    { shipped() {}, failed() {}, recovered() {}, migrated() {} },
  );
  await shipper.shipOnce();
  return { db, shipper, outbox };
}

/** One slice through a monitor's outbox and shipper: the slice's records get a new run (new rows to PostgreSQL). */
async function shipSlice(side: ShipSide): Promise<number> {
  side.db.prepare('UPDATE allocations SET run = ?').run(`bench-${slices++}`);
  await quiesce(20);
  const t0 = performance.now();
  const n = await side.shipper.shipAll();
  const ms = performance.now() - t0;
  if (n !== SLICE) throw new Error(`shipped ${n} of ${SLICE}`);
  return ms;
}

/** The same rows as bare multi-row INSERTs into an empty table of the same shape. */
async function bareSlice(): Promise<number> {
  const cols = ['host_id', ...SHIP_COLUMNS];
  const w = cols.length;
  const c = clients.empty;
  await c.query('TRUNCATE bench_bare');
  await quiesce(20);
  const t0 = performance.now();
  for (let i = 0; i < SLICE; i += BATCH) {
    const batch = rowsInMemory.slice(i, i + BATCH);
    const values = batch.map((_, r) => `(${cols.map((_, j) => `$${r * w + j + 1}`).join(', ')})`);
    await c.query(
      `INSERT INTO bench_bare (${cols.join(', ')}) VALUES ${values.join(', ')}`,
      batch.flatMap((r) => ['synthetic', ...r]),
    );
  }
  return performance.now() - t0;
}

/** Export rates into the 8 M store and into an empty one, each against the bare INSERT; sides rotated slice by slice. */
async function exportRates(): Promise<Figures> {
  const t = { '8m': 0, empty: 0, bare: 0 };
  const sides = ['8m', 'empty', 'bare'] as const;
  for (let k = 0; k < SLICES; k++) {
    const order = k % 2 ? [...sides].reverse() : sides;
    for (const side of order) t[side] += side === 'bare' ? await bareSlice() : await shipSlice(ships[side]);
  }
  const rate = (ms: number) => (SLICES * SLICE) / (ms / 1000);
  const r8 = rate(t['8m']) / rate(t.bare);
  const r0 = rate(t.empty) / rate(t.bare);
  return { export_ratio_8m: r8, export_ratio_empty: r0, export_8m_vs_empty: r8 / r0, export_rows_s_8m: rate(t['8m']) };
}

/**
 * fleet_store: billing reads on a store of 2 M and of 8 M raw rows (one and four years of the
 * same fleet: the 8 M store is older, not busier), each read's 8 M / 2 M ratio; and the export's
 * rate into the 8 M store against its rate into an empty one.
 */
export const fleetStore: Benchmark = {
  name: 'fleet_store',
  goals: {
    monthly_ms_8m: '≤ 200',
    daily_ms_8m: '≤ 200',
    day_all_ms_8m: '≤ 200',
    user_day_ms_8m: '≤ 200',
    monthly_ratio: '≤ 1.3',
    daily_ratio: '≤ 1.3',
    day_all_ratio: '≤ 1.3',
    user_day_ratio: '≤ 1.3',
    export_ratio_8m: '≥ 0.8',
    export_8m_vs_empty: '≥ 0.95',
  },
  warmup: 1,
  rounds: 7,
  async setup(h) {
    postgres = await startPostgres(h, { shared_buffers: '1GB', max_wal_size: '8GB', checkpoint_timeout: '30min' });
    end = Math.floor(Date.now() / HOUR) * HOUR;
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    try {
      for (const db of ['fleet_2m', 'fleet_8m', 'fleet_empty']) await admin.query(`CREATE DATABASE ${db}`);
    } finally {
      await admin.end();
    }
    for (const [key, db] of [
      ['2m', 'fleet_2m'],
      ['8m', 'fleet_8m'],
      ['empty', 'fleet_empty'],
    ] as const) {
      urls[key] = postgres.url.replace(/\/postgres$/, `/${db}`);
      const c = new pg.Client({ connectionString: urls[key] });
      c.on('error', () => undefined);
      await c.connect();
      h.onCleanup(() => c.end());
      clients[key] = c;
    }
    const t0 = Date.now();
    await generate(clients['2m'], SIZES['2m'], end, FLEET);
    await generate(clients['8m'], SIZES['8m'], end, FLEET);
    console.log(`fleet_store: 2 M and 8 M stores generated in ${Math.round((Date.now() - t0) / 1000)} s`);
    await migrate(clients.empty);
    await maintainPartitions(clients.empty, {
      now: shifted(0).startedAt,
      retentionMonths: null,
      rollupRetentionMonths: null,
    });
    await clients.empty.query('CREATE TABLE bench_bare (LIKE turn_monitor.allocations INCLUDING ALL)');
    ships['8m'] = await shipSide({ dir: path.join(h.dir) }, '8m');
    ships.empty = await shipSide({ dir: path.join(h.dir) }, 'empty');
    h.onCleanup(async () => {
      for (const s of Object.values(ships)) {
        await s.shipper.stop();
        s.outbox.close();
        s.db.close();
      }
    });
  },
  async round(_h, round) {
    await clients['8m'].query('CHECKPOINT');
    return { ...(await reads(round)), ...(await exportRates()) };
  },
};
