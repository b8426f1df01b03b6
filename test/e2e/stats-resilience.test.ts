import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { harnessTest } from '../harness/harness.js';
import { startMonitor } from '../harness/monitor.js';
import { runUclient, spawnUclient, startPeer } from '../harness/services.js';
import { monitorRedisPort, publisher, statsConfig, STATS_USER as USER, usage } from '../harness/statsdb.js';
import { byUsername, sqliteHourly, sqliteUnattributedRows } from '../harness/unattributed.js';
import { isAlive, processesMentioning } from '../../src/process/pids.js';
import { waitUntil } from '../../src/process/wait.js';
/** coturn 4.6.1's redis-statsdb messages, recorded by scripts/capture-traces.ts. */
const traces = fileURLToPath(new URL('../fixtures/traces/', import.meta.url));

/** Start a long uclient run in the background (it is tracked and stopped by the harness). */
function longTraffic(h: Parameters<typeof startPeer>[0], turnPort: number, peerPort: number) {
  return spawnUclient(h, {
    turnPort,
    peerPort,
    ...USER,
    clients: 2,
    messages: 3000,
    length: 100,
    extraArgs: ['-z', '5'],
  });
}

harnessTest(
  'kill -9 of turnserver mid-traffic: open allocations closed as child-exit; the next run reuses ids without collision',
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, { ...statsConfig, turnserver: { ...statsConfig.turnserver, restartDelayMs: 200 } });
    const first = await m.waitForEvent('ready');
    longTraffic(h, m.turnPort, peer.port);
    await waitUntil(
      'allocations open',
      async () =>
        (await m.get('/allocations', { headers: { authorization: `Bearer ${statsConfig.http.apiKeys[0]}` } })).body
          .length >= 2,
      10_000,
    );
    const from = m.logs.length;
    process.kill(first.childPid as number, 'SIGKILL');
    const closed = await m.waitForLog((e) => e.event === 'run-closed', { from });
    assert.ok((closed.count as number) >= 2);
    await m.waitForEvent('ready', { from });
    const short = await runUclient(h, { turnPort: m.turnPort, peerPort: peer.port, ...USER, messages: 10 });
    assert.equal(short.code, 0);
    await waitUntil(
      'second run recorded',
      async () => (await usage(m)).some((r) => r.run !== first.runId && r.endReason === 'deleted'),
      10_000,
    );
    const rows = await usage(m);
    const oldRun = rows.filter((r) => r.run === first.runId);
    assert.ok(
      oldRun.length >= 2 && oldRun.every((r) => r.endReason === 'child-exit' && r.complete === false && r.endedAt),
    );
    const newRun = rows.filter((r) => r.run !== first.runId);
    // coturn's ids are server_id·10^15 + a counter that restarts at 1 with every run.
    assert.ok(
      newRun.some((r) => Number(BigInt(r.allocationId) % 10n ** 15n) <= 2),
      'the new run counts from 1 again',
    );
    assert.ok(
      newRun.every((r) => r.endReason !== 'child-exit'),
      'a new run never touches the old records',
    );
    const keys = rows.map((r) => `${r.run}/${r.allocationId}`);
    assert.equal(new Set(keys).size, keys.length);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);

// Adoption (issue 13): a monitor restart is no longer a turnserver restart. With Redis alone the
// events published while no monitor ran are lost, so the carried-on allocations are incomplete.
harnessTest(
  'kill -9 of the monitor mid-traffic (source redis): turnserver and the private Redis adopted, open allocations carried on, none closed as monitor-restart, nothing twice',
  async (h) => {
    const peer = await startPeer(h);
    const m1 = await startMonitor(h, statsConfig);
    const turnPid = (await m1.health()).body.turnserver.pid as number;
    const redisPid = Number(readFileSync(path.join(m1.dataDir, 'redis.pid'), 'utf8'));
    longTraffic(h, m1.turnPort, peer.port);
    const key = { headers: { authorization: `Bearer ${statsConfig.http.apiKeys[0]}` } };
    await waitUntil('allocations open', async () => (await m1.get('/allocations', key)).body.length >= 2, 10_000);
    // /usage flushes a checkpoint: the open allocations are in the database when the monitor dies.
    await waitUntil(
      'open allocations checkpointed',
      async () => (await usage(m1)).filter((r) => r.endedAt === null).length >= 2,
      10_000,
    );
    process.kill(m1.pid, 'SIGKILL');
    await m1.exited;
    const m2 = await startMonitor(h, {}, { rawConfig: m1.config });
    const adopted = await m2.waitForLog((e) => e.event === 'adopted' && e.component === 'supervisor');
    assert.equal(adopted.childPid, turnPid, 'the same turnserver serves on');
    assert.ok(
      m2.logs.some((e) => e.event === 'adopted' && e.component === 'redis-supervisor' && e.childPid === redisPid),
      'the private Redis is adopted too',
    );
    const carried = await m2.waitForLog((e) => e.event === 'run-adopted');
    assert.ok((carried.restored as number) >= 2);
    assert.equal(
      m2.logs.some((e) => e.event === 'leftovers-closed'),
      false,
    );
    const conf = path.join(m2.dataDir, 'turnserver.conf');
    assert.deepEqual(
      processesMentioning(conf).filter((p) => p !== m2.pid),
      [turnPid],
      'exactly one turnserver, the adopted one',
    );
    const rows = await usage(m2);
    assert.equal(rows.filter((r) => r.endReason === 'monitor-restart').length, 0);
    const keys = rows.map((r) => `${r.run}/${r.allocationId}`);
    assert.equal(new Set(keys).size, keys.length, 'no allocation counted twice');
    assert.equal((await m2.stop()).code, 0);
    assert.equal(isAlive(turnPid), false, 'an adopted turnserver is stopped like a child');
    assert.equal(isAlive(redisPid), false);
  },
);

harnessTest(
  'the private redis-server is killed mid-traffic: restarted, coturn reconnects, resubscribed, later allocations recorded',
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, statsConfig);
    const redisPid = Number(readFileSync(path.join(m.dataDir, 'redis.pid'), 'utf8'));
    longTraffic(h, m.turnPort, peer.port);
    const from = m.logs.length;
    process.kill(redisPid, 'SIGKILL');
    await m.waitForLog((e) => e.event === 'redis-lost', { from });
    await m.waitForLog((e) => e.event === 'ready' && e.component === 'redis-supervisor', { from, timeoutMs: 15_000 });
    await m.waitForLog((e) => e.event === 'redis-resubscribed', { from, timeoutMs: 15_000 });
    assert.equal(isAlive(redisPid), false);
    const health = await m.health();
    assert.equal(health.body.stats.redis.subscriber, 'subscribed');
    assert.equal(health.body.stats.redis.reconnects, 1);
    assert.match((await m.get('/metrics')).text, /^turn_monitor_redis_reconnects_total 1$/m);
    // coturn reconnects to Redis on its own schedule: a later allocation is recorded once it has.
    const startedAfter = Date.now();
    await waitUntil(
      'an allocation made after the outage is recorded',
      async () => {
        await runUclient(h, { turnPort: m.turnPort, peerPort: peer.port, ...USER, messages: 5 });
        return (await usage(m)).some((r) => Date.parse(r.startedAt) >= startedAfter && r.endReason === 'deleted');
      },
      45_000,
    );
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);

harnessTest(
  'trace replay and 100,000 malformed messages: trace totals exact, malformed counted, memory flat',
  async (h) => {
    // The captures are part of the test, not optional: without them it would prove nothing here.
    assert.ok(existsSync(traces), `trace captures missing: ${traces} (npm run capture-traces makes them)`);
    const traceFiles = readdirSync(traces)
      .filter((f) => f.endsWith('.jsonl'))
      .sort();
    assert.ok(traceFiles.length > 0, `no .jsonl trace captures in ${traces}`);
    const m = await startMonitor(h, statsConfig);
    const pub = await publisher(h, await monitorRedisPort(m));
    const expected = new Map<string, number[]>();
    for (const [i, file] of traceFiles.entries()) {
      for (const line of readFileSync(path.join(traces, file), 'utf8').split('\n').filter(Boolean)) {
        const { channel, message } = JSON.parse(line) as { channel: string; message: string };
        // Give each trace its own ids: the captures reuse the same ids from separate runs.
        const ch = channel.replace(/\/allocation\/(\d)(\d+)\//, (_, _d, rest) => `/allocation/${i + 7}${rest}/`);
        await pub.publish(ch, message);
        const t = /\/allocation\/(\d+)\/total_traffic$/.exec(ch);
        if (t) expected.set(t[1], message.match(/\d+/g)!.map(Number));
      }
    }
    assert.ok(expected.size > 0, `no total_traffic event in the captures of ${traces}`);
    await waitUntil(
      'trace totals recorded',
      async () => {
        const rows = await usage(m);
        return [...expected.keys()].every((id) => rows.some((r) => r.allocationId === id && r.endReason === 'deleted'));
      },
      10_000,
    );
    const rows = await usage(m);
    for (const [id, c] of expected) {
      const r = rows.find((x) => x.allocationId === id);
      assert.deepEqual([r.rcvp, r.rcvb, r.sentp, r.sentb], c, `trace totals of ${id}`);
    }
    // TCP relay data connections (no username, no `new`, no relayed bytes of their own) are not
    // rows: they are summed per hour once closed (below, at the stop).
    assert.deepEqual(sqliteUnattributedRows(m), [], 'sessions that never allocated are not allocation rows');

    const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${m.pid}/status`, 'utf8'))![1]) / 1024;
    const rssBefore = rss();
    const junk = (i: number): [string, string] => {
      const r = Math.random().toString(36).slice(2);
      switch (i % 5) {
        case 0:
          return [`turn/${r}`, r];
        case 1:
          return [`turn/realm/x/user/u/allocation/${r}x/traffic`, 'rcvp=1, rcvb=1, sentp=1, sentb=1'];
        case 2:
          return [`turn/user/u/allocation/${i}/traffic`, `rcvp=${r}, rcvb=1`];
        case 3:
          return [`turn/user/u/allocation/${i}/status`, `exploded ${r}`];
        default:
          return [`turn/realm/${r}/allocation/1/status`, 'new lifetime=600'];
      }
    };
    for (let batch = 0; batch < 10; batch++) {
      const p = pub.pipeline();
      for (let i = 0; i < 10_000; i++) p.publish(...junk(batch * 10_000 + i));
      await p.exec();
    }
    await pub.publish('__XXX__', 'keepalive');
    await waitUntil(
      'all malformed counted',
      async () => /^turn_monitor_stats_malformed_total 100000$/m.test((await m.get('/metrics')).text),
      30_000,
    );
    assert.ok(m.exited !== undefined && isAlive(m.pid), 'no crash');
    const growth = rss() - rssBefore;
    assert.ok(growth < 40, `RSS grew by ${growth.toFixed(1)} MB`);
    assert.equal((await m.health()).status, 200);
    assert.equal((await m.stop()).code, 0);
    const dataConnections = byUsername(sqliteHourly(m)).get('');
    assert.ok(dataConnections && dataConnections[0] >= 1, 'the data connections, closed with the run, in their hour');
  },
  { timeout: 90_000 },
);
