import assert from 'node:assert/strict';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import {
  exportConfig,
  pgCount,
  pgMatches,
  publishAllocations,
  rollupMismatches,
  sqliteLines,
} from '../harness/export.js';
import { killOrphans, startMonitor } from '../harness/monitor.js';
import { PG_PASSWORD, startPostgres } from '../harness/postgres.js';
import { runUclient, startPeer } from '../harness/services.js';
import { monitorRedisPort, publisher, STATS_USER as USER } from '../harness/statsdb.js';
import { waitUntil } from '../../src/process/wait.js';

const HOST = 'host-o';

harnessTest(
  'outages: PostgreSQL stopped, then killed mid-batch, then the monitor killed mid-batch: every record lands once',
  async (h) => {
    const pg = await startPostgres(h);
    const peer = await startPeer(h);
    const config = exportConfig(h, pg, HOST, { batchSize: 20, intervalSec: 0.2 });
    const configFile = path.join(h.dir, 'monitor.json');
    let m = await startMonitor(h, config, { configFile });
    const relay = async () => {
      const r = await runUclient(h, {
        turnPort: m.turnPort,
        peerPort: peer.port,
        ...USER,
        clients: 2,
        messages: 40,
        length: 100,
      });
      assert.equal(r.code, 0, r.output.slice(-300));
    };
    await relay();
    await waitUntil('first traffic in PostgreSQL', () => pgMatches(pg, m, HOST), 15_000);
    assert.equal((await m.health()).body.export.status, 'ok');
    assert.deepEqual(await rollupMismatches(pg), [], 'rollup = raw rows');

    // 1. PostgreSQL stopped during traffic: the relay goes on, /health is degraded, the backlog waits.
    await pg.stop();
    await relay();
    await waitUntil('export degraded', async () => (await m.health()).body.export.status === 'degraded', 10_000);
    const down = (await m.health()).body;
    assert.equal(down.status, 'degraded');
    assert.ok(
      down.export.backlog > 0 && down.export.lastError.startsWith('export.postgres.url: '),
      JSON.stringify(down.export),
    );
    assert.ok(/^turn_monitor_export_failures_total [1-9]/m.test((await m.get('/metrics')).text));
    assert.ok(await m.stunAnswers(), 'turnserver unaffected');
    await pg.start();
    await waitUntil('backlog shipped after PostgreSQL came back', () => pgMatches(pg, m, HOST), 20_000);
    await waitUntil('export ok again', async () => (await m.health()).body.export.status === 'ok', 5000);
    assert.deepEqual(await rollupMismatches(pg), [], 'rollup = raw rows after the outage');

    // 2. PostgreSQL SIGKILLed while the shipper streams a backlog in batches of 20.
    const pub = await publisher(h, await monitorRedisPort(m));
    await pg.stop();
    const before = sqliteLines(m).length;
    await publishAllocations(pub, 3000, 0);
    await waitUntil('3000 records in usage.db', () => sqliteLines(m).length === before + 3000, 15_000);
    await pg.start();
    await waitUntil('batches landing', async () => (await pgCount(pg, HOST)) > before, 10_000, 5);
    // Killed while real traffic relays and the backlog streams.
    const traffic = relay();
    await pg.kill();
    await traffic;
    await waitUntil('the relay recorded', () => sqliteLines(m).length > before + 3000, 10_000);
    const atKill = sqliteLines(m).length;
    await pg.start();
    const partial = await pgCount(pg, HOST);
    assert.ok(partial < atKill, `killed mid-stream (${partial} of ${atKill} shipped)`);
    await waitUntil('every record after the crash', () => pgMatches(pg, m, HOST), 30_000);
    assert.deepEqual(await rollupMismatches(pg), [], 'rollup = raw rows after PostgreSQL was killed');

    // 3. The monitor SIGKILLed while it streams a backlog: the unacknowledged rows go again, once.
    await pg.stop();
    await publishAllocations(pub, 3000, 10_000);
    await waitUntil('3000 more records in usage.db', () => sqliteLines(m).length === atKill + 3000, 15_000);
    await pg.start();
    await waitUntil('batches landing', async () => (await pgCount(pg, HOST)) > atKill, 10_000, 5);
    m.tracked.child.kill('SIGKILL');
    await m.exited;
    await killOrphans(m);
    const shippedAtKill = await pgCount(pg, HOST);
    assert.ok(shippedAtKill < atKill + 3000, `monitor killed mid-stream (${shippedAtKill} shipped)`);
    m = await startMonitor(h, config, { rawConfig: m.config, configFile });
    await waitUntil('every record after the monitor restart', () => pgMatches(pg, m, HOST), 30_000);
    const dupes = await pg.query(
      `SELECT run, allocation_id FROM turn_monitor.allocations GROUP BY 1, 2 HAVING count(*) > 1`,
    );
    assert.deepEqual(dupes, []);
    assert.deepEqual(await rollupMismatches(pg), [], 'rollup = raw rows after the monitor was killed');
    const billed = await pg.query<{ n: number }>(
      `SELECT sum(allocations)::int AS n FROM turn_monitor.client_usage_monthly`,
    );
    const allocations = await pg.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM turn_monitor.allocations WHERE kind = 'allocation'`,
    );
    assert.deepEqual(billed, allocations, 'each allocation billed once');
    assert.equal((await m.stop()).code, 0);
    assert.equal(m.output().includes(PG_PASSWORD), false, 'the password is never logged');
  },
  { timeout: 120_000 },
);

harnessTest(
  'bad export url (syntax, unknown host, wrong password): the monitor serves, /health degraded, the key named, never the password',
  async (h) => {
    const pg = await startPostgres(h);
    const secret = 'Very-Secret-Pw-1';
    const cases: [string, string, RegExp][] = [
      ['syntax', `postgres://postgres:${secret}@127.0.0.1:notaport/postgres`, /not a valid connection string/],
      ['unknown-host', `postgres://postgres:${secret}@no-such-host.invalid:5432/postgres`, /unknown host/],
      [
        'password',
        `postgres://postgres:${secret}@127.0.0.1:${pg.port}/postgres`,
        /password authentication failed.*wrong password/,
      ],
    ];
    const monitors = await Promise.all(
      cases.map(([id, url]) =>
        startMonitor(h, exportConfig(h, { url }, id), { configFile: path.join(h.dir, `${id}.json`) }),
      ),
    );
    for (const [i, [id, , reason]] of cases.entries()) {
      const m = monitors[i];
      await waitUntil(`${id}: degraded`, async () => (await m.health()).body.export?.status === 'degraded', 15_000);
      const { status, body } = await m.health();
      assert.equal(status, 200, 'still serving');
      assert.match(body.export.lastError, /^export\.postgres\.url: /);
      assert.match(body.export.lastError, reason);
      assert.ok(await m.stunAnswers());
      assert.equal((await m.stop()).code, 0);
      assert.equal(m.output().includes(secret), false, `${id}: the password is never shown`);
      assert.ok(m.logs.some((e) => e.event === 'export-failed' && String(e.err).startsWith('export.postgres.url: ')));
    }
  },
  { timeout: 60_000 },
);
