import assert from 'node:assert/strict';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { exportConfig, pgLines, pgMatches, rollupMismatches, sqliteLines } from '../harness/export.js';
import { monitorBin, startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { startPostgres } from '../harness/postgres.js';
import { runUclient, startPeer } from '../harness/services.js';
import { monitorRedisPort, publisher, recordTotals, STATS_USER as USER, usage } from '../harness/statsdb.js';
import { MIGRATIONS } from '../../src/export/pg-schema.js';
import { waitUntil } from '../../src/process/wait.js';

harnessTest(
  "two hosts export to one PostgreSQL: exactly both hosts' records, equal to coturn's totals; open allocations visible while they last; usage --fleet = union of usage",
  async (h) => {
    const pg = await startPostgres(h);
    const peer = await startPeer(h);
    // Both hosts start at once: the migrations run once under the advisory lock.
    const [a, b] = await Promise.all(
      ['host-a', 'host-b'].map((id) =>
        startMonitor(h, exportConfig(h, pg, id), { configFile: path.join(h.dir, `${id}.json`) }),
      ),
    );
    const hosts: [string, MonitorProcess][] = [
      ['host-a', a],
      ['host-b', b],
    ];
    const truths = await Promise.all([a, b].map(async (m) => recordTotals(h, await monitorRedisPort(m))));
    await Promise.all(
      [a, b].map(async (m, i) => {
        const r = await runUclient(h, {
          turnPort: m.turnPort,
          peerPort: peer.port,
          ...USER,
          clients: 2 + i,
          messages: 50,
          length: 120,
        });
        assert.equal(r.code, 0, r.output.slice(-300));
      }),
    );
    for (const [i, [id, m]] of hosts.entries()) {
      await waitUntil(
        `${id}: every deleted allocation closed in PostgreSQL`,
        async () => {
          const rows = await pg.query<{ allocation_id: string }>(
            `SELECT allocation_id FROM turn_monitor.allocations WHERE host_id = $1 AND end_reason = 'deleted'`,
            [id],
          );
          return (
            truths[i].deleted.size > 0 && [...truths[i].deleted].every((d) => rows.some((r) => r.allocation_id === d))
          );
        },
        15_000,
      );
      await waitUntil(`${id}: PostgreSQL holds exactly the host's records`, () => pgMatches(pg, m, id), 10_000);
      const rows = await pg.query<Record<string, string>>(
        `SELECT * FROM turn_monitor.allocations WHERE host_id = $1 AND end_reason = 'deleted'`,
        [id],
      );
      for (const r of rows) {
        const t = truths[i].totals.get(r.allocation_id);
        assert.deepEqual(
          [r.rcvp, r.rcvb, r.sentp, r.sentb].map(Number),
          t?.client,
          `${id} ${r.allocation_id} client counters`,
        );
        assert.deepEqual(
          [r.peer_rcvp, r.peer_rcvb, r.peer_sentp, r.peer_sentb].map(Number),
          t?.peer,
          `${id} ${r.allocation_id} peer counters`,
        );
      }
      assert.ok(rows.length >= 2 + i, `${id}: ${rows.length} closed allocations compared`);
    }
    assert.deepEqual(await pg.query('SELECT count(*)::int AS n FROM turn_monitor.migrations'), [
      { n: MIGRATIONS.length },
    ]);

    // An open allocation is visible with its running counters before it ends (coturn reports every
    // 4096 packets: the increments are published here on the host's own Redis).
    const pub = await publisher(h, await monitorRedisPort(a));
    const topic = 'turn/realm/test.local/user/1795348399:long-call/allocation/950000000000000001';
    await pub.publish(
      `${topic}/status`,
      'new lifetime=600, type=UDP, local=127.0.0.1:3478, remote=127.0.0.1:50001, ssl=NONE, cipher=NONE',
    );
    const openRow = async () =>
      (
        await pg.query<Record<string, string | null>>(
          `SELECT * FROM turn_monitor.allocations WHERE host_id = 'host-a' AND allocation_id = '950000000000000001'`,
        )
      )[0];
    for (const step of [1, 2, 3]) {
      await pub.publish(`${topic}/traffic`, 'rcvp=4096, rcvb=409600, sentp=4096, sentb=409600');
      await waitUntil(
        `open allocation at ${step}×4096 packets in PostgreSQL`,
        async () => {
          const r = await openRow();
          return r?.ended_at === null && Number(r.rcvp) === step * 4096;
        },
        5000,
      );
    }
    await pub.publish(`${topic}/status`, 'deleted');
    await pub.publish(`${topic}/total_traffic`, 'rcvp=12300, rcvb=1230000, sentp=12300, sentb=1230000');
    await pub.publish(`${topic}/total_traffic/peer`, 'rcvp=0, rcvb=0, sentp=0, sentb=0');
    await waitUntil(
      "closed with coturn's totals",
      async () => {
        const r = await openRow();
        return r?.end_reason === 'deleted' && Number(r.rcvp) === 12300;
      },
      5000,
    );

    // usage --fleet: the union of both hosts' usage, with hostId.
    const cli = async (args: string[]) => {
      const r = await h.run('cli', process.execPath, [monitorBin, 'usage', ...args, '--format', 'json']);
      assert.equal(r.code, 0, r.output);
      return JSON.parse(r.output) as Record<string, unknown>[];
    };
    const key = (r: Record<string, unknown>) => JSON.stringify(r);
    const sortBy = (rows: Record<string, unknown>[]) => rows.map(key).sort();
    for (const by of ['allocation', 'session']) {
      const union = (
        await Promise.all(
          hosts.map(async ([id, m]) =>
            (await cli(['--config', m.configFile, '--by', by])).map((r): Record<string, unknown> => ({
              hostId: id,
              ...r,
            })),
          ),
        )
      ).flat();
      const fleet = await cli(['--fleet', '--config', a.configFile, '--by', by]);
      if (by === 'session') {
        // An open session's duration runs with the clock: compare the rest.
        for (const r of [...union, ...fleet]) if (r.endedAt === null) delete r.durationSec;
      }
      assert.deepEqual(sortBy(fleet), sortBy(union), `usage --fleet --by ${by}`);
    }
    const users = await cli(['--fleet', '--config', a.configFile, '--by', 'user', '--user', USER.user]);
    assert.equal(users.length, 1);
    assert.equal(users[0].hostId, 'host-a,host-b');
    const perHost = await Promise.all(hosts.map(([, m]) => usage(m, `?by=user&user=${USER.user}`)));
    assert.equal(
      users[0].rcvb,
      perHost.reduce((s, u) => s + (u[0].rcvb as number), 0),
      'user summed across hosts',
    );
    const onlyB = await cli(['--fleet', '--config', a.configFile, '--host', 'host-b']);
    assert.ok(onlyB.length > 0 && onlyB.every((r) => r.hostId === 'host-b'));
    const billing = await pg.query<{ client_id: string; hosts: number }>(
      `SELECT client_id, hosts FROM turn_monitor.client_usage_daily WHERE client_id = $1`,
      [USER.user],
    );
    assert.equal(billing[0]?.hosts, '2' as unknown as number, 'billing view across hosts');
    const monthly = await pg.query<{ hosts: string; rcvb: string }>(
      `SELECT hosts::text, rcvb::text FROM turn_monitor.client_usage_monthly WHERE client_id = $1`,
      [USER.user],
    );
    assert.deepEqual(
      monthly,
      [{ hosts: '2', rcvb: String(users[0].rcvb) }],
      'monthly billing = usage --fleet --by user',
    );

    // A graceful stop closes what was open (child-exit) and ships it before exiting.
    for (const [id, m] of hosts) {
      assert.equal((await m.stop()).code, 0);
      assert.deepEqual(await pgLines(pg, id), sqliteLines(m), `${id}: PostgreSQL = usage.db after the stop`);
      assert.equal(m.output().includes(pg.url), false);
    }
    assert.deepEqual(await rollupMismatches(pg), [], 'rollup = raw rows');
  },
  { timeout: 90_000 },
);
