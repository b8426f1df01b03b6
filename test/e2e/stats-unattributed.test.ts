import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { harnessTest } from '../harness/harness.js';
import { exportConfig } from '../harness/export.js';
import { startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { startPostgres } from '../harness/postgres.js';
import { runUclient, startPeer } from '../harness/services.js';
import { statsConfig } from '../harness/statsdb.js';
import {
  byUsername,
  loggedSessions,
  pgHourly,
  probeSessions,
  sqliteAllocationCount,
  sqliteHourly,
} from '../harness/unattributed.js';
import { MIGRATIONS } from '../../src/export/pg-schema.js';
import { waitUntil } from '../../src/process/wait.js';

const HOST = 'host-u';

/**
 * What the log monitor's hourly table must hold: turnserver's own usage of every session it
 * closed that never allocated and relayed nothing, but for our probe's, summed per username.
 */
function expectedHourly(m: MonitorProcess, probeFrom: string) {
  const sessions = [...loggedSessions(m).values()].filter(
    (s) => s.remote !== null && !s.allocated && s.peer.every((v) => v === 0),
  );
  const out = new Map<string, number[]>();
  for (const s of sessions.filter((x) => x.remote !== probeFrom)) {
    const sum = out.get(s.username) ?? new Array<number>(9).fill(0);
    [1, ...s.client, ...s.peer].forEach((v, i) => (sum[i] += v));
    out.set(s.username, sum);
  }
  return { hourly: out, probes: sessions.filter((x) => x.remote === probeFrom).length };
}

const sorted = (m: Map<string, number[]>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b));

harnessTest(
  "sessions that never allocated: our own probes' are not recorded (log and redis), a stunclient binding and a failed authentication are summed per hour, and the hours ship to PostgreSQL exactly, once, through a restart",
  async (h) => {
    const pg = await startPostgres(h);
    const peer = await startPeer(h);
    const logConfig = { ...exportConfig(h, pg, HOST), stats: { source: 'log' as const } };
    const [logM, redisM] = await Promise.all([
      startMonitor(h, logConfig, { configFile: path.join(h.dir, 'log.json') }),
      startMonitor(
        h,
        { ...statsConfig, dataDir: path.join(h.dir, 'data-redis') },
        { configFile: path.join(h.dir, 'redis.json') },
      ),
    ]);
    const probeFrom = (await logM.health()).body.turnserver.probeFrom as string;
    assert.match(probeFrom, /^127\.0\.0\.1:\d+$/);

    // From outside: a STUN binding (turnutils_stunclient: a bare Binding request, like our probe)
    // and a failed authentication under the username it tried.
    const stun = await h.run('stunclient', 'turnutils_stunclient', ['-p', String(logM.turnPort), '127.0.0.1'], {
      timeoutMs: 10_000,
    });
    assert.match(stun.output, /UDP reflexive addr: 127\.0\.0\.1:\d+/);
    const denied = await runUclient(h, {
      turnPort: logM.turnPort,
      peerPort: peer.port,
      user: 'intruder',
      password: 'wrong',
      messages: 1,
      timeoutMs: 20_000,
    });
    assert.match(denied.output, /Cannot complete Allocation/);

    // coturn drops a session that never allocated about 60 s after it began, and reports it then.
    await waitUntil(
      "log: coturn closed the outside sessions and one of our probe's; the hours hold exactly the outside ones",
      async () => {
        const { hourly, probes } = expectedHourly(logM, probeFrom);
        return (
          hourly.get('')?.[0] === 1 &&
          (hourly.get('intruder')?.[0] ?? 0) >= 1 &&
          probes >= 1 &&
          (await probeSessions(logM, 'address')) === probes &&
          JSON.stringify(sorted(byUsername(sqliteHourly(logM)))) === JSON.stringify(sorted(hourly))
        );
      },
      100_000,
      500,
    );
    await waitUntil(
      'redis: a probe session recognised by its signature',
      async () => (await probeSessions(redisM, 'signature')) >= 1,
      30_000,
    );
    assert.equal(sqliteAllocationCount(logM), 0, 'log: no allocation row');
    assert.equal(sqliteAllocationCount(redisM), 0, 'redis: no allocation row');
    assert.deepEqual(sqliteHourly(redisM), [], 'redis: nothing from its own probes');
    const stunRow = sqliteHourly(logM).find((r) => r[2] === '')!;
    assert.deepEqual(stunRow.slice(3, 6), [1, 1, 20], 'one binding session: one 20-byte request');
    assert.equal(await probeSessions(logM, 'signature'), 0, 'log: known by their address');
    // coturn dropped the probe's session while the probes went on from the same socket: none missed.
    for (const m of [logM, redisM]) assert.equal(m.logs.filter((e) => e.event === 'probe-miss').length, 0);

    // Shipped: PostgreSQL holds exactly the host's hours.
    await waitUntil(
      'hours in PostgreSQL',
      async () => JSON.stringify(await pgHourly(pg, HOST)) === JSON.stringify(sqliteHourly(logM)),
      15_000,
    );
    assert.deepEqual(await pg.query('SELECT count(*)::int AS n FROM turn_monitor.migrations'), [
      { n: MIGRATIONS.length },
    ]);

    // A crash between PostgreSQL's commit and the acknowledgement leaves the marks: sent again
    // after the restart, the hours stay what they are (the upsert sets the host's totals).
    assert.equal((await logM.stop()).code, 0);
    const shipped = sqliteHourly(logM);
    const db = new Database(path.join(logM.dataDir, 'usage.db'));
    db.exec(`INSERT INTO export_outbox_hourly (hour, realm, username, version, marked_at)
             SELECT hour, realm, username, 1, 0 FROM unattributed_hourly`);
    db.close();
    const again = await startMonitor(h, logConfig, { rawConfig: logM.config, configFile: logM.configFile });
    await waitUntil(
      'the re-marked hours sent again',
      async () => {
        const e = (await again.health()).body.export;
        return e.backlog === 0 && e.hourlyRowsShipped >= shipped.length;
      },
      15_000,
    );
    assert.deepEqual(await pgHourly(pg, HOST), shipped, 'PostgreSQL unchanged by the re-send');
    assert.deepEqual(sqliteHourly(again), shipped);
    await Promise.all([again.stop(), redisM.stop()]);
  },
  { timeout: 150_000 },
);
