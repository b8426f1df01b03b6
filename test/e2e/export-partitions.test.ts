import assert from 'node:assert/strict';
import path from 'node:path';
import PG from 'pg';
import { harnessTest } from '../harness/harness.js';
import { allocationRecord, exportConfig, localShipper, pgMatches, rollupMismatches } from '../harness/export.js';
import { startMonitor } from '../harness/monitor.js';
import { startPostgres, type Postgres } from '../harness/postgres.js';
import { runUclient, startPeer } from '../harness/services.js';
import { STATS_USER as USER } from '../harness/statsdb.js';
import { migrate } from '../../src/export/pg-schema.js';
import type { MaintenanceReport } from '../../src/export/partitions.js';
import { monthName, monthStart } from '../../src/export/partitions.js';
import { waitUntil } from '../../src/process/wait.js';

const partitions = async (pg: Postgres) =>
  (
    await pg.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'turn_monitor.allocations'::regclass ORDER BY 1`,
    )
  ).map((r) => r.name);

const partOf = async (pg: Postgres, id: string) =>
  (
    await pg.query<{ part: string }>(
      `SELECT tableoid::regclass::text AS part FROM turn_monitor.allocations WHERE allocation_id = $1`,
      [id],
    )
  ).map((r) => r.part);

let nextId = 400_000_000_000_000_000n;
const id = () => String(nextId++);

harnessTest(
  'two monitors racing over month boundaries create each partition once; a row of a month without one waits in the default partition and moves when it is created',
  async (h) => {
    const pg = await startPostgres(h);
    let now = Date.UTC(2026, 0, 31, 23, 59, 50);
    const clock = () => now;
    const ships = ['host-a', 'host-b'].map((host) => localShipper(h, pg, host, { now: clock }));
    const created: string[] = [];
    const both = async (startedAt: number) => {
      for (const s of ships)
        s.write([allocationRecord(id(), { startedAt, lastEventAt: now, endedAt: now, clientId: s.hostId })]);
      // Both ship at once: each runs maintenance first (the month is new to it), under the lock.
      await Promise.all(ships.map((s) => s.ship()));
      for (const s of ships) {
        const r = s.shipper.lastMaintenance as MaintenanceReport;
        assert.deepEqual(r.failed, []);
        created.push(...r.created);
        s.shipper.lastMaintenance = null;
      }
    };
    await both(now - 60_000);
    assert.deepEqual(created.sort(), ['2026-01', '2026-02', '2026-03'], 'created once, by one of the two');
    // Across three month boundaries, both monitors shipping the second after each.
    for (const month of [1, 2, 3]) {
      now = Date.UTC(2026, month, 1, 0, 0, 5);
      await both(now - 2000);
    }
    assert.deepEqual(
      created.sort(),
      ['2026-01', '2026-02', '2026-03', '2026-04', '2026-05', '2026-06'],
      'each month created exactly once',
    );
    assert.deepEqual(await partitions(pg), [
      'allocations_2026_01',
      'allocations_2026_02',
      'allocations_2026_03',
      'allocations_2026_04',
      'allocations_2026_05',
      'allocations_2026_06',
      'allocations_default',
    ]);
    assert.deepEqual(await pg.query('SELECT * FROM turn_monitor.allocations_default'), []);

    // A start in a month with no partition (a host's clock years ahead): kept in the default
    // partition, never lost, and moved into its month when that is created.
    const ahead = id();
    ships[0].write([allocationRecord(ahead, { startedAt: Date.UTC(2029, 6, 4), lastEventAt: now, endedAt: now })]);
    await ships[0].ship();
    assert.deepEqual(await partOf(pg, ahead), ['turn_monitor.allocations_default']);
    const report = await ships[1].shipper.maintainNow();
    assert.deepEqual([report?.created, report?.moved], [['2029-07'], 1]);
    assert.deepEqual(await partOf(pg, ahead), ['turn_monitor.allocations_2029_07']);
    assert.equal(Number((await pg.query<{ n: string }>('SELECT count(*) AS n FROM turn_monitor.allocations'))[0].n), 9);
    assert.deepEqual(await rollupMismatches(pg), []);
  },
  { timeout: 60_000 },
);

harnessTest(
  'retention drops a whole old month, keeps the month of a call still open, drops it once the call ends; rollup rows past their own retention deleted',
  async (h) => {
    const pg = await startPostgres(h);
    let now = Date.UTC(2025, 11, 15);
    const s = localShipper(h, pg, 'host-r', { now: () => now, retentionMonths: 3, rollupRetentionMonths: 4 });
    const dec = allocationRecord(id(), { startedAt: Date.UTC(2025, 11, 14), lastEventAt: Date.UTC(2025, 11, 14, 1) });
    s.write([dec]);
    await s.ship();
    now = Date.UTC(2026, 0, 10);
    const call = allocationRecord(id(), {
      clientId: 'long-call',
      startedAt: Date.UTC(2026, 0, 5),
      lastEventAt: now,
      endedAt: null,
      endReason: null,
    });
    const janClosed = allocationRecord(id(), { startedAt: Date.UTC(2026, 0, 6), lastEventAt: Date.UTC(2026, 0, 6, 1) });
    s.write([call, janClosed]);
    await s.ship();
    assert.deepEqual(await partOf(pg, call.allocationId), ['turn_monitor.allocations_2026_01']);

    // April: December is wholly older than three months: dropped whole. January stays (not yet old).
    now = Date.UTC(2026, 3, 15);
    s.write([{ ...call, lastEventAt: now, client: [20, 2000, 21, 2100] }]);
    await s.ship();
    let r = s.shipper.lastMaintenance!;
    assert.deepEqual([r.dropped, r.keptOpen, r.failed], [['2025-12'], [], []]);
    assert.equal((await partitions(pg)).includes('allocations_2025_12'), false);
    assert.deepEqual(await partOf(pg, dec.allocationId), [], 'dropped with its partition');

    // May: January is old enough, but the call that started in it is still open: kept.
    now = Date.UTC(2026, 4, 2);
    s.write([{ ...call, lastEventAt: now, client: [30, 3000, 31, 3100] }]);
    await s.ship();
    r = s.shipper.lastMaintenance!;
    assert.deepEqual([r.dropped, r.keptOpen], [[], ['2026-01']]);
    assert.deepEqual(await partOf(pg, janClosed.allocationId), ['turn_monitor.allocations_2026_01']);
    // Rollup retention (4 months): December's hours and month are gone.
    assert.ok(r.rollupDeleted >= 2, `rollup rows deleted: ${r.rollupDeleted}`);
    assert.deepEqual(
      await pg.query(
        `SELECT 'hourly' AS t FROM turn_monitor.client_usage_hourly WHERE hour < '2026-01-01'
         UNION ALL SELECT 'monthly' FROM turn_monitor.client_usage_monthly WHERE month < '2026-01-01'`,
      ),
      [],
    );

    // The call ends: the next pass drops January too; its billing stays in the rollup.
    now = Date.UTC(2026, 4, 2, 1);
    s.write([{ ...call, lastEventAt: now, endedAt: now, endReason: 'deleted', client: [40, 4000, 41, 4100] }]);
    await s.ship();
    r = (await s.shipper.maintainNow())!;
    assert.deepEqual([r.dropped, r.keptOpen], [['2026-01'], []]);
    assert.deepEqual(await partOf(pg, call.allocationId), []);
    // Remembered, so fleet-check never compares a window whose raw rows are gone.
    assert.deepEqual(
      await pg.query(`SELECT to_char(month, 'YYYY-MM') AS month FROM turn_monitor.dropped_partitions ORDER BY 1`),
      [{ month: '2025-12' }, { month: '2026-01' }],
    );
    const billed = await pg.query<{ month: string; rcvb: number }>(
      `SELECT to_char(month, 'YYYY-MM') AS month, rcvb::int FROM turn_monitor.client_usage_monthly
        WHERE client_id = 'long-call' ORDER BY 1`,
    );
    assert.deepEqual(billed, [
      { month: '2026-01', rcvb: 1000 },
      { month: '2026-04', rcvb: 1000 },
      { month: '2026-05', rcvb: 2000 },
    ]);
    assert.deepEqual(await partitions(pg), [
      'allocations_2026_02',
      'allocations_2026_03',
      'allocations_2026_04',
      'allocations_2026_05',
      'allocations_2026_06',
      'allocations_2026_07',
      'allocations_default',
    ]);
  },
  { timeout: 60_000 },
);

harnessTest(
  'a partition that cannot be created (no permission) is an export health error naming the months; relayed traffic ships into the default partition meanwhile and moves once it can be created',
  async (h) => {
    const pg = await startPostgres(h);
    const peer = await startPeer(h);
    // The schema migrated by its owner; the monitors write as a role that may only write rows.
    const admin = new PG.Client({ connectionString: pg.url });
    await admin.connect();
    h.onCleanup(() => admin.end());
    await migrate(admin);
    await pg.query(`CREATE ROLE shipper LOGIN PASSWORD 'shipper-pw-2718'`);
    await pg.query(`GRANT USAGE ON SCHEMA turn_monitor TO shipper`);
    await pg.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA turn_monitor TO shipper`);
    const url = pg.url.replace(/^postgres:\/\/postgres:[^@]*@/, 'postgres://shipper:shipper-pw-2718@');
    const configFile = path.join(h.dir, 'monitor.json');
    const config = exportConfig(h, { url }, 'host-p');
    let m = await startMonitor(h, config, { configFile });
    const months = [0, 1, 2].map((i) => monthName(monthStart(Date.now(), i)));
    await waitUntil('export degraded', async () => (await m.health()).body.export.status === 'degraded', 10_000);
    const ex = (await m.health()).body.export;
    assert.match(ex.partitionError, new RegExp(`no partition for ${months.join(', ')} \\(permission denied`));
    assert.equal(ex.lastError, null, 'shipping itself works');
    assert.ok(m.logs.some((e) => e.event === 'export-partition-failed'));

    const r = await runUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      clients: 2,
      messages: 30,
      length: 100,
    });
    assert.equal(r.code, 0, r.output.slice(-300));
    await waitUntil('relayed records shipped meanwhile', () => pgMatches(pg, m, 'host-p'), 15_000);
    const waiting = await pg.query<{ n: number }>('SELECT count(*)::int AS n FROM turn_monitor.allocations_default');
    assert.ok(waiting[0].n > 0, 'in the default partition');
    assert.equal((await m.health()).body.export.partitionError !== null, true);

    // The owner lets the role create partitions; the next start creates them and moves the rows.
    await pg.query(`ALTER TABLE turn_monitor.allocations OWNER TO shipper`);
    await pg.query(`GRANT CREATE ON SCHEMA turn_monitor TO shipper`);
    assert.equal((await m.stop()).code, 0);
    m = await startMonitor(h, config, { rawConfig: m.config, configFile });
    await waitUntil('partitions created', () => m.logs.some((e) => e.event === 'export-partitions'), 10_000);
    await waitUntil('export ok', async () => (await m.health()).body.export.status === 'ok', 10_000);
    assert.equal((await m.health()).body.export.partitionError, null);
    assert.deepEqual(await pg.query('SELECT * FROM turn_monitor.allocations_default'), []);
    assert.ok(
      months.every((x) => m.logs.some((e) => e.event === 'export-partitions' && (e.created as string[]).includes(x))),
    );
    await waitUntil('every record, none lost', () => pgMatches(pg, m, 'host-p'), 10_000);
    assert.deepEqual(await rollupMismatches(pg), []);
    assert.equal((await m.stop()).code, 0);
    assert.equal(m.output().includes('shipper-pw-2718'), false, 'the password is never logged');
  },
  { timeout: 90_000 },
);
