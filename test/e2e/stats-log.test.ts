import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { runUclient, spawnUclient, startPeer, startRedis, type UclientOptions } from '../harness/services.js';
import { recordTotals, statsConfig, STATS_USER as USER, usage } from '../harness/statsdb.js';
import { byUsername, loggedSessions, sqliteHourly, sqliteUnattributedRows } from '../harness/unattributed.js';
import { isAlive } from '../../src/process/pids.js';
import { waitUntil } from '../../src/process/wait.js';

const logConfig = (source: 'log' | 'both' | 'redis', extra: string[] = []) => ({
  ...statsConfig,
  stats: { source },
  turnserver: { extraConfig: [...statsConfig.turnserver.extraConfig, ...extra] },
});

function longTraffic(h: Parameters<typeof startPeer>[0], m: MonitorProcess, peerPort: number, messages = 3000) {
  return spawnUclient(h, { turnPort: m.turnPort, peerPort, ...USER, messages, length: 100, extraArgs: ['-z', '5'] });
}

/** Totals per allocation from turnserver's own final usage lines, as they reached our log. */
function logTotals(m: MonitorProcess): Map<string, { client: number[]; peer: number[] }> {
  const out = new Map<string, { client: number[]; peer: number[] }>();
  for (const e of m.logs) {
    const x =
      e.component === 'turnserver' &&
      /session (\d+): (peer )?usage: .*, rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)$/.exec(e.msg);
    if (!x) continue;
    const t = out.get(x[1]) ?? { client: [0, 0, 0, 0], peer: [0, 0, 0, 0] };
    const side = x[2] ? t.peer : t.client;
    [3, 4, 5, 6].forEach((g, i) => (side[i] += Number(x[g])));
    out.set(x[1], t);
  }
  return out;
}

harnessTest(
  "source 'log': no Redis at all, and every allocation equals coturn's totals (UDP, send indications, TCP, TCP relay)",
  async (h) => {
    // The truth: coturn's own total_traffic, from an extra redis-statsdb line the test points at its own Redis.
    const truthRedis = await startRedis(h);
    const peer = await startPeer(h);
    const m = await startMonitor(
      h,
      logConfig('log', [`redis-statsdb="ip=127.0.0.1 port=${truthRedis.port} dbname=0 connect_timeout=30"`]),
    );
    const conf = readFileSync(path.join(m.dataDir, 'turnserver.conf'), 'utf8');
    assert.equal((conf.match(/^redis-statsdb=/gm) ?? []).length, 1, "only the test's own statsdb line");
    assert.match(conf, /^verbose$/m);
    const health = await m.health();
    assert.equal(health.body.stats.redis, null);
    assert.equal(health.body.stats.status, 'ok');
    const truth = await recordTotals(h, truthRedis.port);
    const base: UclientOptions = {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      clients: 2,
      messages: 60,
      length: 120,
    };
    for (const opts of [
      base,
      { ...base, sendIndications: true },
      { ...base, tcp: true },
      { ...base, tcpRelay: true, clients: 1 },
    ]) {
      assert.equal((await runUclient(h, opts)).code, 0);
    }
    await waitUntil(
      'every deleted allocation recorded',
      async () => {
        const rows = await usage(m);
        return [...truth.deleted].every((id) => rows.some((r) => r.allocationId === id && r.endReason === 'deleted'));
      },
      15_000,
    );
    const rows = (await usage(m)).filter((r) => r.endReason === 'deleted');
    assert.ok(rows.length >= 7);
    for (const r of rows) {
      const t = truth.totals.get(r.allocationId);
      assert.deepEqual([r.rcvp, r.rcvb, r.sentp, r.sentb], t?.client, `client counters of ${r.allocationId}`);
      assert.deepEqual(
        [r.peerRcvp, r.peerRcvb, r.peerSentp, r.peerSentb],
        t?.peer,
        `peer counters of ${r.allocationId}`,
      );
      assert.ok(r.endDetail, 'close reason from the log');
      assert.equal(r.complete, true);
    }
    // TCP relay data connections (no username, no `new`, no relayed bytes of their own): closed at
    // their `closed` line into their hour, as turnserver logged them; no rows.
    const probeFrom = (await m.health()).body.turnserver.probeFrom;
    const dataConnections = () => {
      const sum = new Array<number>(9).fill(0);
      for (const s of loggedSessions(m).values())
        if (!s.allocated && s.remote !== null && s.remote !== probeFrom && s.username === '')
          [1, ...s.client, ...s.peer].forEach((v, i) => (sum[i] += v));
      return sum;
    };
    await waitUntil(
      'data connections in their hour',
      () =>
        dataConnections()[0] > 0 &&
        JSON.stringify(byUsername(sqliteHourly(m)).get('')) === JSON.stringify(dataConnections()),
      5000,
    );
    assert.deepEqual(dataConnections().slice(5), [0, 0, 0, 0], 'no relayed bytes of their own');
    assert.deepEqual(sqliteUnattributedRows(m), []);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 120_000 },
);

harnessTest(
  "a '%' username: with source 'redis' coturn 4.6.1 crashes and is back in 3.5 s with open allocations closed; with the default config ('auto' → 'log') it survives",
  async (h) => {
    const peer = await startPeer(h);
    // The second monitor runs on the default source ('auto', which is 'log' on coturn 4.6.1).
    const two = (name: string, source: 'redis' | null) =>
      startMonitor(
        h,
        {
          ...(source ? logConfig(source) : { http: statsConfig.http, turnserver: statsConfig.turnserver }),
          dataDir: path.join(h.dir, name),
        },
        { configFile: path.join(h.dir, `${name}.json`) },
      );
    const [withRedis, withLog] = await Promise.all([two('redis', 'redis'), two('default', null)]);
    const logPid = (await withLog.health()).body.turnserver.pid;
    assert.equal((await withLog.health()).body.stats.source, 'log', "'auto' chose the log on 4.6.1");
    const redisRun = (await withRedis.health()).body.turnserver.runId;
    longTraffic(h, withRedis, peer.port, 20_000); // an allocation open when the crash comes
    await waitUntil(
      'allocation open',
      async () =>
        (await withRedis.get('/allocations', { headers: { authorization: `Bearer ${statsConfig.http.apiKeys[0]}` } }))
          .body.length > 0,
      10_000,
    );
    const probeAt = Date.now();
    const probe = (m: MonitorProcess) =>
      runUclient(h, {
        turnPort: m.turnPort,
        peerPort: peer.port,
        user: 'a%sb',
        password: 'wrong',
        messages: 1,
        timeoutMs: 15_000,
      });
    await Promise.all([probe(withRedis), probe(withLog)]);

    // coturn publishes a failed session's traffic ~60 s later: that format string is the crash.
    const from = 0;
    const crash = await withRedis.waitForLog((e) => e.event === 'exit' && e.component === 'supervisor', {
      from,
      timeoutMs: 80_000,
    });
    assert.equal(crash.signal, 'SIGSEGV');
    const back = await withRedis.waitForLog(
      (e) => e.event === 'ready' && e.component === 'supervisor' && e.runId !== redisRun,
      { timeoutMs: 10_000 },
    );
    assert.ok(Date.parse(back.time as string) - Date.parse(crash.time as string) <= 3500, 'serving again within 3.5 s');
    const closed = (await usage(withRedis)).filter((r) => r.run === redisRun && r.endReason === 'child-exit');
    assert.ok(closed.length >= 1, 'the allocations open at the crash were closed as child-exit');

    await waitUntil('70 s after the probe', () => Date.now() - probeAt >= 70_000, 80_000);
    const logHealth = (await withLog.health()).body.turnserver;
    assert.equal(logHealth.pid, logPid, 'default source: the same turnserver still serves');
    assert.equal(logHealth.restarts, 0);
    assert.ok(isAlive(logPid));
    await Promise.all([withRedis.stop(), withLog.stop()]);
  },
  { timeout: 150_000 },
);

harnessTest(
  "source 'both': the private Redis killed during traffic; allocations that lived through the outage get exact totals from the log",
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, logConfig('both'));
    const uclient = longTraffic(h, m, peer.port, 1500);
    const key = { headers: { authorization: `Bearer ${statsConfig.http.apiKeys[0]}` } };
    await waitUntil('allocation open', async () => (await m.get('/allocations', key)).body.length > 0, 10_000);
    const live = (await m.get('/allocations', key)).body.map((r: any) => r.allocationId);
    const from = m.logs.length;
    process.kill(Number(readFileSync(path.join(m.dataDir, 'redis.pid'), 'utf8')), 'SIGKILL');
    await m.waitForLog((e) => e.event === 'redis-lost', { from });
    await m.waitForLog((e) => e.event === 'redis-resubscribed', { from, timeoutMs: 15_000 });
    await uclient.exited;
    // The allocations turnserver freed (its probe allocation lives on until its lifetime ends).
    const freed = () =>
      live.filter((id: string) =>
        m.logs.some((e) => e.component === 'turnserver' && e.msg.startsWith(`session ${id}: delete:`)),
      );
    await waitUntil(
      'outage allocations freed and closed',
      async () => {
        const rows = await usage(m);
        return (
          freed().length > 0 &&
          freed().every((id: string) => rows.some((r) => r.allocationId === id && r.endReason === 'deleted'))
        );
      },
      20_000,
    );
    const truth = logTotals(m);
    const rows = (await usage(m)).filter((r) => freed().includes(r.allocationId));
    assert.ok(rows.length > 0);
    for (const r of rows) {
      const t = truth.get(r.allocationId);
      assert.deepEqual([r.rcvp, r.rcvb, r.sentp, r.sentb], t?.client);
      assert.deepEqual([r.peerRcvp, r.peerRcvb, r.peerSentp, r.peerSentb], t?.peer);
      assert.equal(r.complete, true, 'filled from the log, the record is whole again');
    }
    assert.match((await m.get('/metrics')).text, /^turn_monitor_stats_filled_from_log_total [1-9]/m);
    assert.match((await m.get('/metrics')).text, /^turn_monitor_stats_source_disagreements_total 0$/m);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);
