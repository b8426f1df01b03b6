import assert from 'node:assert/strict';
import { harnessTest, waitExit } from '../harness/harness.js';
import { coturnSessions } from '../harness/coturn-cli.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';
import { runUclient, spawnUclient, startPeer } from '../harness/services.js';
import { statsConfig, STATS_USER as USER, usage } from '../harness/statsdb.js';
import { waitUntil } from '../../src/process/wait.js';

// With Redis alone, what coturn publishes while no monitor runs is lost to pub/sub: the monitor
// that adopts turnserver closes what `ps` no longer lists from the last checkpoint, incomplete.
harnessTest(
  'source redis: an allocation that ends while no monitor runs is closed by the adopting monitor from its last checkpoint, incomplete, as ended-unmonitored; live ones stay open',
  async (h) => {
    const peer = await startPeer(h);
    const m1 = await startMonitor(h, statsConfig);
    const turnPid = (await m1.health()).body.turnserver.pid as number;
    const relay = { turnPort: m1.turnPort, peerPort: peer.port, ...USER, length: 100 };
    // uclient never frees its probe allocation: it stays live (until its lifetime ends) after uclient exits.
    assert.equal((await runUclient(h, { ...relay, messages: 1 })).code, 0);
    // coturn publishes traffic every 4096 packets: enough of them to checkpoint counters before the kill.
    const ending = spawnUclient(h, { ...relay, messages: 5000, extraArgs: ['-z', '1'] }, 'ending-relay');
    await waitUntil(
      'relayed bytes checkpointed',
      async () => (await usage(m1)).some((r) => r.endedAt === null && r.rcvb > 0),
      20_000,
    );
    const killedAt = Date.now();
    process.kill(m1.pid, 'SIGKILL');
    await m1.exited;

    // What the database holds now (read directly, as `turn-monitor usage` does while no monitor runs).
    const stored = async () =>
      JSON.parse(
        (await h.run('usage', process.execPath, [monitorBin, 'usage', '--config', m1.configFile, '--format', 'json']))
          .output,
      ) as any[];
    const checkpoint = (await stored()).filter((r) => r.endedAt === null);
    const relaying = checkpoint.find((r) => r.rcvb > 0);
    assert.ok(relaying, 'the relaying allocation was checkpointed open with its counters');
    assert.equal((await waitExit(ending, 30_000)).code, 0, 'the relay ends while no monitor runs');
    await waitUntil('freed in coturn', async () => !(await coturnSessions(m1)).ids.has(relaying.allocationId), 10_000);
    const listed = (await coturnSessions(m1)).ids;
    const live = checkpoint.filter((r) => listed.has(r.allocationId));
    assert.ok(live.length >= 2, 'both probe allocations are still live');
    const gone = checkpoint.filter((r) => !listed.has(r.allocationId));

    const m2 = await startMonitor(h, {}, { rawConfig: m1.config });
    const adopted = await m2.waitForLog((e) => e.event === 'adopted' && e.component === 'supervisor');
    assert.equal(adopted.childPid, turnPid, 'the same turnserver serves on');
    const closed = await m2.waitForLog((e) => e.event === 'closed-unlisted');
    assert.equal(closed.count, gone.length);

    const rows = await usage(m2);
    const row = rows.find((r) => r.run === relaying.run && r.allocationId === relaying.allocationId);
    assert.ok(row, 'the ended allocation is in /usage');
    assert.ok(row.endedAt !== null, 'closed');
    assert.equal(row.endReason, 'ended-unmonitored');
    assert.equal(row.complete, false, 'marked incomplete: its last events were lost');
    assert.ok(Date.parse(row.endedAt) <= killedAt, 'ended at its last checkpointed event');
    const counters = (r: any) =>
      ['rcvp', 'rcvb', 'sentp', 'sentb', 'peerRcvp', 'peerRcvb', 'peerSentp', 'peerSentb'].map((k) => r[k] as number);
    assert.deepEqual(counters(row), counters(relaying), "the last checkpoint's counters: nothing later was seen");
    for (const l of live) {
      const r = rows.find((x) => x.run === l.run && x.allocationId === l.allocationId);
      assert.equal(r?.endedAt, null, `live allocation ${l.allocationId} stays open`);
    }
    assert.equal(rows.filter((r) => r.endReason === 'monitor-restart').length, 0);
    assert.equal((await m2.stop()).code, 0);
  },
  { timeout: 60_000 },
);
