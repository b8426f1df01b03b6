import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Redis } from 'ioredis';
import { Outbox } from '../src/export/outbox.js';
import { migrate, SHIP_COLUMNS, SHIP_SQL, shipParams } from '../src/export/pg-schema.js';
import { Shipper } from '../src/export/shipper.js';
import type { AllocationRecord } from '../src/stats/allocation-record.js';
import { UsageStore } from '../src/stats/store.js';
import { exportConfig } from '../test/harness/export.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { startPostgres, type Postgres } from '../test/harness/postgres.js';
import { monitorRedisPort, publisher } from '../test/harness/statsdb.js';
import { waitUntil } from '../src/process/wait.js';
import { alternate, percentile, quiesce, rateFigures, sleep, type Benchmark, type Figures, type Timed } from './lib.js';

const ROWS = 60_000;
const BATCH = 500;
const CLOSES_PER_SEC = 1000;
const CLOSE_SECONDS = 5;
const INTERVAL_SEC = 5;
const CLOSE_ROUNDS = 5;
/** host_id of the in-memory rows of the throughput figures (the running monitor exports as 'bench'). */
const SYNTHETIC = 'synthetic';

let db: string;
let postgres: Postgres;
let client: pg.Client;
/** The running monitor's database: its closes never change the tables the throughput pairs write. */
let closeClient: pg.Client;
let monitor: MonitorProcess;
let pub: Redis;
let rows: unknown[][];

export function record(i: number): AllocationRecord {
  const c: [number, number, number, number] = [i, i * 100, i + 1, (i + 1) * 100];
  return {
    run: 'bench-run',
    allocationId: String(100_000_000_000_000_000n + BigInt(i)),
    kind: 'allocation',
    realm: 'bench.local',
    username: `1795348399:client${i % 500}`,
    clientId: `client${i % 500}`,
    transport: 'UDP',
    local: '127.0.0.1:3478',
    remote: '127.0.0.1:50000',
    lifetime: 600,
    startedAt: 1_795_000_000_000 + i,
    endedAt: 1_795_000_060_000 + i,
    lastEventAt: 1_795_000_060_000 + i,
    endReason: 'deleted',
    endDetail: null,
    client: c,
    peer: c,
    totalClient: c,
    totalPeer: c,
    altClient: null,
    altPeer: null,
    deletedAt: 1_795_000_060_000 + i,
    deletedBy: ['redis'],
    pendingReason: null,
    altSawNew: false,
    gap: false,
    persisted: true,
    pendingWrite: false,
    complete: true,
  };
}

/** Rows per slice: a round alternates ROWS / SLICE slices of each side. */
const SLICE = 5_000;

/** The columns of a shipped row with its host id first, as the bare INSERT writes them. */
const upsertColumns = ['host_id', ...SHIP_COLUMNS];
/** Our store: the partitioned raw table and the rollups the statement maintains. */
const OURS = ['turn_monitor.allocations', 'turn_monitor.client_usage_hourly', 'turn_monitor.client_usage_monthly'].join(
  ', ',
);

/** Every round starts from empty tables: no side inherits the last one's dead rows. */
async function emptyTable(table: string): Promise<void> {
  await client.query(`TRUNCATE ${table}`);
}

/** Ours, one slice: its rows marked in the outbox (untimed), then Shipper → PostgreSQL (upsert, ack in SQLite) until it is empty. */
async function oursSlice(k: number, shipper: Shipper, marks: Database.Statement): Promise<Timed> {
  marks.run(SLICE, k * SLICE);
  const t0 = performance.now();
  const shipped = await shipper.shipAll();
  if (shipped !== SLICE) throw new Error(`shipped ${shipped} rows of a slice of ${SLICE}`);
  return { wall: (performance.now() - t0) / 1000 };
}

/** Baseline, one slice: the same rows (already in memory) as bare multi-row INSERTs into a table of the same shape (key and indexes), no conflict handling, no outbox. */
async function bareSlice(k: number): Promise<Timed> {
  const w = upsertColumns.length;
  const t0 = performance.now();
  for (let i = k * SLICE; i < (k + 1) * SLICE; i += BATCH) {
    const batch = rows.slice(i, i + BATCH);
    const values = batch.map((_, r) => `(${upsertColumns.map((_, j) => `$${r * w + j + 1}`).join(', ')})`);
    await client.query(
      `INSERT INTO bench_bare (${upsertColumns.join(', ')}) VALUES ${values.join(', ')}`,
      batch.flat(),
    );
  }
  return { wall: (performance.now() - t0) / 1000 };
}

/**
 * Rows/s of both sides over one round: slices of the two alternated (ABBA), each side's rate from
 * its summed time. This VM's speed moves within seconds: slices a fraction of a second long see
 * the same machine on both sides. A round starts with a checkpoint, so none falls inside it (a
 * round writes far less WAL than max_wal_size), and each slice after a quiet harness (its GC).
 */
async function throughput(): Promise<Figures> {
  await emptyTable(OURS);
  await emptyTable('bench_bare');
  await client.query('CHECKPOINT');
  const sqlite = new Database(db);
  sqlite.exec('DELETE FROM export_outbox');
  const marks = sqlite.prepare(
    'INSERT OR REPLACE INTO export_outbox (alloc_id, version, marked_at) SELECT id, 1, 0 FROM allocations ORDER BY id LIMIT ? OFFSET ?',
  );
  const outbox = new Outbox(db);
  const shipper = new Shipper(
    outbox,
    { url: postgres.url, hostId: SYNTHETIC, intervalMs: 60_000, batchSize: BATCH, secrets: [] },
    { shipped() {}, failed() {}, recovered() {}, migrated() {} },
  );
  await shipper.shipOnce(); // connects (the outbox is empty) outside the timing
  try {
    const pairs = await alternate(ROWS / SLICE, async (side, k) => {
      await quiesce(50);
      return side === 'ours' ? oursSlice(k, shipper, marks) : bareSlice(k);
    });
    return rateFigures('rows', SLICE, pairs);
  } finally {
    await shipper.stop();
    outbox.close();
    sqlite.close();
  }
}

/** For the record: the same rows through our statement straight from memory (no outbox). */
async function bareUpsert(): Promise<number> {
  await emptyTable(OURS);
  const t0 = performance.now();
  for (let i = BATCH; i < rows.length; i += BATCH) {
    const batch = rows.slice(i, i + BATCH).map((r) => r.slice(1));
    await client.query({ name: 'bench_ship', text: SHIP_SQL, values: shipParams(SYNTHETIC, batch) });
  }
  return (rows.length - BATCH) / ((performance.now() - t0) / 1000);
}

/** 1,000 closes/s through the monitor (Redis → SQLite → outbox → PostgreSQL); seconds to visible, per close. */
async function closeLatency(round: number): Promise<number[]> {
  const n = CLOSES_PER_SEC * CLOSE_SECONDS;
  const id = (i: number) => String(800_000_000_000_000_000n + BigInt(round * 100_000 + i));
  const topic = (i: number) => `turn/realm/test.local/user/1795348399:load${i % 100}/allocation/${id(i)}`;
  let p = pub.pipeline();
  for (let i = 0; i < n; i++)
    p.publish(
      `${topic(i)}/status`,
      'new lifetime=600, type=UDP, local=127.0.0.1:3478, remote=127.0.0.1:50000, ssl=NONE, cipher=NONE',
    );
  await p.exec();
  await waitUntil(
    'opened allocations shipped',
    async () => {
      const { rows: r } = await closeClient.query<{ n: string }>(
        `SELECT count(*) AS n FROM turn_monitor.allocations WHERE host_id = 'bench' AND allocation_id = ANY($1)`,
        [Array.from({ length: n }, (_, i) => id(i))],
      );
      return Number(r[0].n) === n && (await monitor.health()).body.export.backlog === 0;
    },
    60_000,
    200,
  );
  const sentAt = new Map<string, number>();
  const perTick = CLOSES_PER_SEC / 100;
  const start = Date.now();
  for (let i = 0; i < n; i += perTick) {
    const due = start + (i / CLOSES_PER_SEC) * 1000;
    if (due > Date.now()) await sleep(due - Date.now());
    p = pub.pipeline();
    for (let j = i; j < i + perTick; j++) {
      p.publish(`${topic(j)}/traffic`, 'rcvp=10, rcvb=1000, sentp=10, sentb=1000');
      p.publish(`${topic(j)}/status`, 'deleted');
      p.publish(`${topic(j)}/total_traffic`, 'rcvp=10, rcvb=1000, sentp=10, sentb=1000');
      p.publish(`${topic(j)}/total_traffic/peer`, 'rcvp=0, rcvb=0, sentp=0, sentb=0');
    }
    const at = Date.now();
    await p.exec();
    for (let j = i; j < i + perTick; j++) sentAt.set(id(j), at);
  }
  const ids = [...sentAt.keys()];
  await waitUntil(
    'every close visible',
    async () => {
      const { rows: r } = await closeClient.query<{ n: string }>(
        `SELECT count(*) AS n FROM turn_monitor.allocations WHERE host_id = 'bench' AND allocation_id = ANY($1) AND ended_at IS NOT NULL`,
        [ids],
      );
      return Number(r[0].n) === ids.length;
    },
    60_000,
    100,
  );
  const { rows: seen } = await closeClient.query<{ allocation_id: string; ms: string }>(
    `SELECT allocation_id, (extract(epoch from shipped_at) * 1000)::bigint AS ms FROM turn_monitor.allocations WHERE host_id = 'bench' AND allocation_id = ANY($1)`,
    [ids],
  );
  const lat = seen.map((r) => (Number(r.ms) - sentAt.get(r.allocation_id)!) / 1000);
  return lat;
}

/**
 * export: rows/s from the outbox into PostgreSQL against a bare pg multi-row INSERT of the same
 * rows; and close → visible in PostgreSQL at 1,000 closes/s through a running monitor.
 */
export const exportBench: Benchmark = {
  name: 'export',
  goals: { ratio: '≥ 0.8', close_p99_s: `≤ ${2 + INTERVAL_SEC} (2 s + intervalSec)` },
  warmup: 1,
  rounds: 17,
  async setup(h) {
    postgres = await startPostgres(h);
    client = new pg.Client({ connectionString: postgres.url });
    client.on('error', () => undefined);
    await client.connect();
    h.onCleanup(() => client.end());
    await migrate(client);
    // The month of the synthetic rows (November 2026), as partition maintenance would create it.
    const { rows: part } = await client.query<{ p: string }>(
      `SELECT turn_monitor.create_allocations_month(to_timestamp($1 / 1000.0)) AS p`,
      [record(0).startedAt],
    );
    await client.query(`CREATE TABLE bench_bare (LIKE turn_monitor.allocations INCLUDING ALL)`);
    // An autovacuum or autoanalyze woken by one load would run inside the next one's window.
    for (const table of [...OURS.split(', ').slice(1), `turn_monitor.${part[0].p}`, 'bench_bare'])
      await client.query(`ALTER TABLE ${table} SET (autovacuum_enabled = false)`);
    db = path.join(h.dir, 'bench-usage.db');
    const store = new UsageStore(db);
    store.write(Array.from({ length: ROWS }, (_, i) => record(i)));
    store.close();
    new Outbox(db).close(); // creates the outbox and its triggers
    const outbox = new Outbox(db);
    rows = outbox
      .take(ROWS)
      .map(({ row }) => [
        SYNTHETIC,
        ...Object.values(row).map((v, j) => (j >= 10 && j <= 12 && v !== null ? new Date(v as number) : v)),
      ]);
    outbox.close();
    await client.query('CREATE DATABASE bench_close');
    const closeUrl = postgres.url.replace(/\/postgres$/, '/bench_close');
    closeClient = new pg.Client({ connectionString: closeUrl });
    closeClient.on('error', () => undefined);
    await closeClient.connect();
    h.onCleanup(() => closeClient.end());
    monitor = await startMonitor(h, {
      ...exportConfig(h, { url: closeUrl }, 'bench', { intervalSec: INTERVAL_SEC }),
      logLevel: 'info',
    });
    pub = await publisher(h, await monitorRedisPort(monitor));
  },
  async round(_h, round) {
    const figures = await throughput();
    figures.upsert_rows_s = await bareUpsert();
    // Close latency is steady from round to round: the warm-up and five samples are enough.
    if (round < 1 + CLOSE_ROUNDS) {
      const lat = await closeLatency(round);
      figures.close_p50_s = percentile(lat, 50);
      figures.close_p99_s = percentile(lat, 99);
    }
    return figures;
  },
};
