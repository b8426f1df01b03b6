import assert from 'node:assert/strict';
import PG from 'pg';
import { harnessTest } from '../harness/harness.js';
import { allocationRecord, localShipper, rollupMismatches } from '../harness/export.js';
import { startPostgres } from '../harness/postgres.js';
import { COLUMNS, recordValues } from '../../src/stats/allocation-row.js';
import type { AllocationRecord, Counters } from '../../src/stats/allocation-record.js';
import { migrate, SHIP_SQL, shipParams } from '../../src/export/pg-schema.js';
import { maintainPartitions } from '../../src/export/partitions.js';

const JAN20 = Date.UTC(2026, 0, 20);
const c4 = (n: number): Counters => [n, n * 100, n + 1, (n + 1) * 100];

harnessTest(
  'a record re-sent with every field changed lands once, in its first partition, and the rollup follows it',
  async (h) => {
    const pg = await startPostgres(h);
    const s = localShipper(h, pg, 'host-r', { now: () => JAN20 });
    const first = allocationRecord('100000000000000001', {
      kind: 'unattributed',
      startedAt: Date.UTC(2026, 0, 15, 12),
      endedAt: null,
      lastEventAt: Date.UTC(2026, 0, 15, 12, 5),
      endReason: null,
      client: c4(1),
      peer: c4(1),
      complete: false,
    });
    s.write([first]);
    assert.equal(await s.ship(), 1);
    const where = `host_id = 'host-r' AND run = 'run-1' AND allocation_id = '100000000000000001'`;
    const stored = () =>
      pg.query<Record<string, any>>(
        `SELECT tableoid::regclass::text AS part, * FROM turn_monitor.allocations WHERE ${where}`,
      );
    assert.equal((await stored())[0].part, 'turn_monitor.allocations_2026_01');
    assert.deepEqual(await pg.query('SELECT * FROM turn_monitor.client_usage_hourly'), [], 'unattributed: not billed');

    // Every field but the identity changed: kind, realm, user, addresses, lifetime, an earlier start
    // (in a month with no partition), the end, the counters, complete.
    const changed = allocationRecord('100000000000000001', {
      kind: 'allocation',
      realm: 'other.realm',
      username: '1795348399:b"o\\b{,} ü',
      clientId: 'bob',
      transport: 'TCP',
      local: '127.0.0.2:3479',
      remote: '127.0.0.3:40000',
      lifetime: 300,
      startedAt: Date.UTC(2025, 11, 10, 8),
      endedAt: Date.UTC(2026, 1, 2, 9, 30),
      lastEventAt: Date.UTC(2026, 1, 2, 9, 30),
      endReason: 'deleted',
      endDetail: 'changed',
      client: c4(5),
      peer: c4(7),
      complete: true,
    });
    s.write([changed]);
    assert.equal(await s.ship(), 1);
    let rows = await stored();
    assert.equal(rows.length, 1, 'one row');
    assert.equal(
      (await pg.query(`SELECT 1 FROM turn_monitor.allocations WHERE allocation_id = '100000000000000001'`)).length,
      1,
    );
    const r = rows[0];
    assert.equal(r.part, 'turn_monitor.allocations_2026_01', 'never moves between partitions');
    assert.equal(r.started_at.getTime(), first.startedAt, 'the partition key stays as first shipped');
    assert.deepEqual(
      [
        r.kind,
        r.realm,
        r.username,
        r.client_id,
        r.transport,
        r.local,
        r.remote,
        Number(r.lifetime),
        r.end_reason,
        r.end_detail,
        r.complete,
      ],
      [
        'allocation',
        'other.realm',
        '1795348399:b"o\\b{,} ü',
        'bob',
        'TCP',
        '127.0.0.2:3479',
        '127.0.0.3:40000',
        300,
        'deleted',
        'changed',
        true,
      ],
    );
    assert.equal(r.ended_at.getTime(), changed.endedAt);
    assert.deepEqual([r.rcvb, r.peer_sentb].map(Number), [500, 800]);
    // Billed to the new client, in the hour of the latest event.
    const hourly = await pg.query<Record<string, any>>(
      `SELECT to_char(hour, 'YYYY-MM-DD HH24') AS hour, realm, client_id, allocations::int, hosts::int, rcvb::int FROM turn_monitor.client_usage_hourly ORDER BY 1`,
    );
    assert.deepEqual(hourly, [
      { hour: '2026-02-02 09', realm: 'other.realm', client_id: 'bob', allocations: 1, hosts: 1, rcvb: 500 },
    ]);
    assert.deepEqual(await rollupMismatches(pg), []);

    // Back to the first client, a counter lower than stored (never goes down), the end kept.
    s.write([
      {
        ...changed,
        realm: 'test.local',
        username: '1795348399:alice',
        clientId: 'alice',
        client: [5, 400, 9, 900],
        endedAt: Date.UTC(2026, 1, 3),
      },
    ]);
    assert.equal(await s.ship(), 1);
    rows = await stored();
    assert.equal(rows.length, 1);
    assert.deepEqual(
      [rows[0].client_id, Number(rows[0].rcvb), Number(rows[0].sentb), rows[0].ended_at.getTime()],
      ['alice', 500, 900, changed.endedAt],
    );
    assert.deepEqual(await rollupMismatches(pg), []);
    const totals = await pg.query<{ client_id: string; rcvb: number; allocations: number }>(
      `SELECT client_id, sum(rcvb)::int AS rcvb, sum(allocations)::int AS allocations FROM turn_monitor.client_usage_hourly GROUP BY 1 ORDER BY 1`,
    );
    assert.deepEqual(totals, [
      { client_id: 'alice', rcvb: 500, allocations: 1 },
      { client_id: 'bob', rcvb: 0, allocations: 0 },
    ]);

    // The same row once more: lands once, adds nothing.
    const before = await pg.query('SELECT * FROM turn_monitor.client_usage_hourly ORDER BY hour, client_id');
    const client = new PG.Client({ connectionString: pg.url });
    await client.connect();
    try {
      const again = await client.query(
        SHIP_SQL,
        shipParams('host-r', [
          valuesOf({
            ...changed,
            realm: 'test.local',
            username: '1795348399:alice',
            clientId: 'alice',
            client: [5, 400, 9, 900],
          }),
        ]),
      );
      assert.deepEqual(again.rows, [{ updated: 1, inserted: 0 }]);
    } finally {
      await client.end();
    }
    assert.deepEqual(await pg.query('SELECT * FROM turn_monitor.client_usage_hourly ORDER BY hour, client_id'), before);
  },
  { timeout: 60_000 },
);

/** A record's values as SHIP_SQL takes them (times as dates, complete as a boolean). */
function valuesOf(r: AllocationRecord): unknown[] {
  return recordValues(r).map((v, i) =>
    v === null ? null : COLUMNS[i].kind === 'time' ? new Date(v as number) : COLUMNS[i].kind === 'bool' ? v === 1 : v,
  );
}

harnessTest(
  'a call across a month boundary is billed in both months by what it relayed in each',
  async (h) => {
    const pg = await startPostgres(h);
    let now = Date.UTC(2026, 0, 31, 23, 50);
    const s = localShipper(h, pg, 'host-m', { now: () => now });
    const call = allocationRecord('200000000000000001', {
      clientId: 'carol',
      username: '1795348399:carol',
      startedAt: Date.UTC(2026, 0, 31, 23, 30),
      lastEventAt: now,
      endedAt: null,
      endReason: null,
      client: [100, 10_000, 100, 10_000],
      peer: [100, 9_000, 100, 9_000],
    });
    s.write([call]);
    await s.ship();
    now = Date.UTC(2026, 1, 1, 0, 20);
    s.write([{ ...call, lastEventAt: now, client: [300, 30_000, 300, 30_000], peer: [300, 27_000, 300, 27_000] }]);
    await s.ship();
    now = Date.UTC(2026, 1, 1, 0, 40);
    s.write([
      {
        ...call,
        lastEventAt: now,
        endedAt: now,
        endReason: 'deleted',
        client: [350, 35_000, 350, 35_000],
        peer: [350, 31_500, 350, 31_500],
      },
    ]);
    await s.ship();

    const monthly = await pg.query(
      `SELECT to_char(month, 'YYYY-MM') AS month, allocations::int, hosts::int, client_bytes::int, peer_bytes::int
         FROM turn_monitor.client_usage_monthly WHERE client_id = 'carol' ORDER BY 1`,
    );
    assert.deepEqual(monthly, [
      { month: '2026-01', allocations: 1, hosts: 1, client_bytes: 20_000, peer_bytes: 18_000 },
      { month: '2026-02', allocations: 0, hosts: 1, client_bytes: 50_000, peer_bytes: 45_000 },
    ]);
    const daily = await pg.query(
      `SELECT to_char(day, 'YYYY-MM-DD') AS day, allocations::int, hosts::int, client_bytes::int, complete
         FROM turn_monitor.client_usage_daily WHERE client_id = 'carol' ORDER BY 1`,
    );
    assert.deepEqual(daily, [
      { day: '2026-01-31', allocations: 1, hosts: 1, client_bytes: 20_000, complete: true },
      { day: '2026-02-01', allocations: 0, hosts: 1, client_bytes: 50_000, complete: true },
    ]);
    const part = await pg.query<{ part: string }>(
      `SELECT tableoid::regclass::text AS part FROM turn_monitor.allocations WHERE client_id = 'carol'`,
    );
    assert.deepEqual(part, [{ part: 'turn_monitor.allocations_2026_01' }], 'the raw row stays in the month it started');
    assert.deepEqual(await rollupMismatches(pg), []);
  },
  { timeout: 60_000 },
);

/** A deterministic generator (mulberry32). */
function rng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

harnessTest(
  'the rollup invariant after re-sends interleaved in any order, from two hosts at once',
  async (h) => {
    const pg = await startPostgres(h);
    const admin = new PG.Client({ connectionString: pg.url });
    await admin.connect();
    h.onCleanup(() => admin.end());
    await migrate(admin);
    await maintainPartitions(admin, { now: Date.UTC(2026, 0, 31), retentionMonths: null, rollupRetentionMonths: null });
    const random = rng(42);
    // 300 records per host, each in 4 versions (counters and last event only grow; one in five
    // starts unattributed and becomes an allocation; some cross a month boundary).
    const versions = (host: number) =>
      Array.from({ length: 300 }, (_, i) => {
        const start = Date.UTC(2026, 0, 31, 20) + Math.floor(random() * 8 * 3_600_000);
        const client = `c${Math.floor(random() * 40)}`;
        return Array.from({ length: 4 }, (_, v) =>
          allocationRecord(String(300000000000000000n + BigInt(host * 1000 + i)), {
            kind: i % 5 === 0 && v < 2 ? 'unattributed' : 'allocation',
            clientId: client,
            username: `1795348399:${client}`,
            realm: i % 7 === 0 ? null : 'test.local',
            startedAt: start - (v === 3 ? 5000 : 0),
            lastEventAt: start + v * 1_800_000,
            endedAt: v === 3 ? start + v * 1_800_000 : null,
            endReason: v === 3 ? 'deleted' : null,
            client: c4(1 + v * 10 + (i % 9)),
            peer: c4(v * 7 + (i % 5)),
            complete: v !== 1,
          }),
        );
      });
    const hosts = ['host-x', 'host-y'].map((id, k) => ({ id, records: versions(k) }));
    // Each record's versions in order, some sent twice (a re-send after a lost ack), the records
    // interleaved at random: the outbox always sends a record's current version, never an older one.
    const sendOrder = (records: AllocationRecord[][]) => {
      const queues = records.map((rec) => rec.flatMap((v) => (random() < 0.3 ? [v, v] : [v])));
      const sends: AllocationRecord[] = [];
      while (queues.length > 0) {
        const k = Math.floor(random() * queues.length);
        sends.push(queues[k].shift()!);
        if (queues[k].length === 0) queues.splice(k, 1);
      }
      return sends;
    };
    await Promise.all(
      hosts.map(async ({ id, records }) => {
        const c = new PG.Client({ connectionString: pg.url });
        await c.connect();
        try {
          const sends = sendOrder(records);
          for (let i = 0; i < sends.length;) {
            // A batch never holds the same record twice (one outbox mark per record).
            const seen = new Set<string>();
            const batch: AllocationRecord[] = [];
            while (i < sends.length && batch.length < 50 && !seen.has(sends[i].allocationId)) {
              seen.add(sends[i].allocationId);
              batch.push(sends[i++]);
            }
            await c.query({ name: 'ship', text: SHIP_SQL, values: shipParams(id, batch.map(valuesOf)) });
          }
        } finally {
          await c.end();
        }
      }),
    );
    assert.deepEqual(await rollupMismatches(pg), []);
    // The raw rows are the latest versions (counters maxed), one per record.
    const raw = await pg.query<{ n: number; rcvb: number }>(
      `SELECT count(*)::int AS n, sum(rcvb)::int AS rcvb FROM turn_monitor.allocations`,
    );
    const expected = hosts.flatMap((x) => x.records.map((r) => r[3].client[1])).reduce((a, b) => a + b, 0);
    assert.deepEqual(raw, [{ n: 600, rcvb: expected }]);
    const negative = await pg.query(`SELECT * FROM turn_monitor.client_usage_hourly WHERE rcvb < 0 OR allocations < 0`);
    assert.deepEqual(negative, []);
  },
  { timeout: 60_000 },
);
