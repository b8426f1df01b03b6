import assert from 'node:assert/strict';
import PG from 'pg';
import { harnessTest } from '../harness/harness.js';
import { allocationRecord, localShipper, rollupMismatches } from '../harness/export.js';
import { startPostgres, type Postgres } from '../harness/postgres.js';
import { COUNTER_COLUMNS, migrate, MIGRATIONS, SCHEMA } from '../../src/export/pg-schema.js';

const ROWS = 40_000;

/** The landed schema of an existing install: versions 1 and 2 as they were applied. */
async function landedSchema(pg: Postgres): Promise<void> {
  await pg.query(`CREATE SCHEMA ${SCHEMA}`);
  await pg.query(
    `CREATE TABLE ${SCHEMA}.migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
  );
  for (const [i, sql] of MIGRATIONS.slice(0, 2).entries()) {
    await pg.query(sql);
    await pg.query(`INSERT INTO ${SCHEMA}.migrations (version) VALUES ($1)`, [i + 1]);
  }
}

harnessTest(
  'v1 → partitioned: a populated v1 table migrates in one transaction under the lock, rows, counts and counters kept, rollups equal to them',
  async (h) => {
    const pg = await startPostgres(h);
    await landedSchema(pg);
    // Four months of rows from five hosts and three runs each: open ones, unattributed ones,
    // incomplete ones, rows without a realm.
    await pg.query(
      `INSERT INTO ${SCHEMA}.allocations (host_id, allocation_id, run, kind, realm, username, client_id, transport,
         local, remote, lifetime, started_at, ended_at, last_event_at, end_reason, end_detail,
         ${COUNTER_COLUMNS.join(', ')}, complete)
       SELECT 'old-' || (i % 5), lpad(i::text, 18, '0'), 'run-' || (i % 3),
              CASE WHEN i % 11 = 0 THEN 'unattributed' ELSE 'allocation' END,
              CASE WHEN i % 13 = 0 THEN NULL ELSE 'test.local' END, '1795348399:c' || (i % 300), 'c' || (i % 300),
              'UDP', '127.0.0.1:3478', '127.0.0.1:50000', 600, ts,
              CASE WHEN i % 500 = 0 THEN NULL ELSE ts + d END, ts + d,
              CASE WHEN i % 500 = 0 THEN NULL ELSE 'deleted' END, NULL,
              i % 97, (i % 97) * 120, i % 89, (i % 89) * 110, i % 83, (i % 83) * 100, i % 79, (i % 79) * 90,
              i % 17 <> 0
         FROM generate_series(1, $1) i,
              LATERAL (SELECT timestamptz '2026-08-01 00:00+00' + i * interval '4 minutes' AS ts,
                              (i % 7200) * interval '1 second' AS d) x`,
      [ROWS],
    );
    const perHost = `SELECT host_id, count(*)::int AS n, count(*) FILTER (WHERE ended_at IS NULL)::int AS open,
                            ${COUNTER_COLUMNS.map((c) => `sum(${c})::bigint AS ${c}`).join(', ')}
                       FROM ${SCHEMA}.allocations GROUP BY host_id ORDER BY host_id`;
    const everyRow = `SELECT md5(string_agg(a::text, '' ORDER BY host_id, run, allocation_id)) AS digest
                        FROM (SELECT host_id, allocation_id, run, kind, realm, username, client_id, transport, local,
                                     remote, lifetime, started_at, ended_at, last_event_at, end_reason, end_detail,
                                     ${COUNTER_COLUMNS.join(', ')}, complete, shipped_at
                                FROM ${SCHEMA}.allocations) a`;
    const before = { hosts: await pg.query(perHost), digest: await pg.query(everyRow) };
    assert.equal(before.hosts.length, 5);

    // A migration that fails half-way leaves v2 exactly as it was (one transaction).
    await pg.query(`CREATE TABLE ${SCHEMA}.client_usage_monthly (in_the_way int)`);
    const c1 = new PG.Client({ connectionString: pg.url });
    const c2 = new PG.Client({ connectionString: pg.url });
    await Promise.all([c1.connect(), c2.connect()]);
    h.onCleanup(async () => {
      await Promise.all([c1.end(), c2.end()]);
    });
    await assert.rejects(migrate(c1), /client_usage_monthly" already exists/);
    const kind = await pg.query(`SELECT relkind FROM pg_class WHERE oid = '${SCHEMA}.allocations'::regclass`);
    assert.deepEqual(kind, [{ relkind: 'r' }], 'still the v1 table');
    assert.deepEqual(await pg.query(`SELECT max(version) AS v FROM ${SCHEMA}.migrations`), [{ v: 2 }]);
    assert.deepEqual(await pg.query(perHost), before.hosts);
    assert.ok((await pg.query(`SELECT 1 FROM ${SCHEMA}.client_usage_daily LIMIT 1`)).length === 1, 'v1 views kept');
    await pg.query(`DROP TABLE ${SCHEMA}.client_usage_monthly`);

    // Two monitors start at once: one migrates, the other waits on the lock and finds it done.
    const t0 = performance.now();
    const applied = await Promise.all([migrate(c1), migrate(c2)]);
    const ms = performance.now() - t0;
    assert.deepEqual(applied.sort(), [0, MIGRATIONS.length - 2], 'from v2 to the latest, once');
    assert.deepEqual(await pg.query(`SELECT max(version) AS v FROM ${SCHEMA}.migrations`), [{ v: MIGRATIONS.length }]);
    console.log(`migrated ${ROWS} v1 rows in ${Math.round(ms)} ms`);

    // Every row kept as it was, in the partition of its month; none left in the default partition.
    assert.deepEqual(await pg.query(perHost), before.hosts);
    assert.deepEqual(await pg.query(everyRow), before.digest);
    const parts = await pg.query<{ part: string; n: number }>(
      `SELECT tableoid::regclass::text AS part, count(*)::int AS n FROM ${SCHEMA}.allocations GROUP BY 1 ORDER BY 1`,
    );
    assert.deepEqual(
      parts.map((p) => p.part),
      ['2026_08', '2026_09', '2026_10', '2026_11'].map((m) => `${SCHEMA}.allocations_${m}`),
    );
    assert.equal(
      parts.reduce((s, p) => s + p.n, 0),
      ROWS,
    );
    assert.deepEqual(await pg.query(`SELECT relkind FROM pg_class WHERE oid = '${SCHEMA}.allocations'::regclass`), [
      { relkind: 'p' },
    ]);
    // The rollups hold exactly the raw rows' counters, per client, month and hour.
    assert.deepEqual(await rollupMismatches(pg), []);
    const billed = await pg.query<{ n: string }>(
      `SELECT sum(allocations)::text AS n FROM ${SCHEMA}.client_usage_monthly`,
    );
    assert.equal(Number(billed[0].n), ROWS - Math.floor(ROWS / 11), 'every allocation counted once');
    const daily = await pg.query(`SELECT * FROM ${SCHEMA}.client_usage_daily WHERE client_id = 'c7' ORDER BY day`);
    assert.ok(daily.length > 50, `daily view over the rollup (${daily.length} days)`);

    // A monitor of one of those hosts ships on: a re-sent old record with a changed start lands
    // once, in place, and the rollup adds only its difference.
    const old = (
      await pg.query<Record<string, any>>(
        `SELECT * FROM ${SCHEMA}.allocations WHERE host_id = 'old-0' AND kind = 'allocation' AND ended_at IS NULL LIMIT 1`,
      )
    )[0];
    const s = localShipper(h, pg, 'old-0', { now: () => Date.UTC(2026, 10, 20) });
    s.write([
      allocationRecord(old.allocation_id, {
        run: old.run,
        realm: old.realm,
        username: old.username,
        clientId: old.client_id,
        startedAt: old.started_at.getTime() - 3_600_000,
        lastEventAt: old.last_event_at.getTime() + 60_000,
        endedAt: old.last_event_at.getTime() + 60_000,
        client: [Number(old.rcvp) + 1, Number(old.rcvb) + 1000, Number(old.sentp), Number(old.sentb)],
        peer: [Number(old.peer_rcvp), Number(old.peer_rcvb), Number(old.peer_sentp), Number(old.peer_sentb)],
        complete: old.complete,
      }),
    ]);
    assert.equal(await s.ship(), 1);
    const after = await pg.query<{ n: number; rcvb: string }>(
      `SELECT count(*)::int AS n, max(rcvb)::text AS rcvb FROM ${SCHEMA}.allocations WHERE host_id = 'old-0' AND run = $1 AND allocation_id = $2`,
      [old.run, old.allocation_id],
    );
    assert.deepEqual(after, [{ n: 1, rcvb: String(Number(old.rcvb) + 1000) }]);
    assert.deepEqual(await rollupMismatches(pg), []);
  },
  { timeout: 120_000 },
);

harnessTest(
  "a migration longer than the shipper's per-query deadline completes (not aborted and retried forever)",
  async (h) => {
    const pg = await startPostgres(h);
    await landedSchema(pg);
    await pg.query(
      `INSERT INTO ${SCHEMA}.allocations (host_id, allocation_id, run, kind, realm, username, client_id, started_at,
         last_event_at, ${COUNTER_COLUMNS.join(', ')}, complete)
       SELECT 'old', lpad(i::text, 18, '0'), 'r', 'allocation', 'test.local', 'u' || (i % 1000), 'u' || (i % 1000),
              timestamptz '2026-10-01 00:00+00' + i * interval '10 seconds', timestamptz '2026-10-01 00:00+00' + i * interval '10 seconds',
              1, 2, 3, 4, 5, 6, 7, 8, true
         FROM generate_series(1, 300000) i`,
    );
    // Every query of this shipper has a 300 ms deadline; the migration takes seconds.
    const s = localShipper(h, pg, 'new-host', { timeoutMs: 300, now: () => Date.UTC(2026, 10, 1) });
    const t0 = performance.now();
    assert.equal(await s.ship(), 0);
    assert.ok(performance.now() - t0 > 300, 'the migration outlasted the deadline');
    assert.deepEqual(await pg.query(`SELECT max(version) AS v FROM ${SCHEMA}.migrations`), [{ v: MIGRATIONS.length }]);
    assert.deepEqual(await pg.query(`SELECT count(*)::int AS n FROM ${SCHEMA}.allocations`), [{ n: 300_000 }]);
  },
  { timeout: 120_000 },
);
