import assert from 'node:assert/strict';
import { harnessTest, waitExit } from '../harness/harness.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';
import {
  monitorRedisPort,
  recordTotals,
  STATS_API_KEY,
  statsConfig,
  STATS_USER as USER,
  usage,
} from '../harness/statsdb.js';
import { isAlive, processesMentioning } from '../../src/process/pids.js';
import { waitUntil } from '../../src/process/wait.js';

// The drain's turnserver side through the admin channel on coturn 4.6.1: `cc total-quota 1`
// refuses new allocations, `cs` cancels what is left at the deadline.
harnessTest(
  'SIGTERM drain: new allocations refused within 6 s, no credential, a short relay ends on its own (deleted), the rest cancelled at the deadline as drained with exact totals, exit 0',
  async (h) => {
    const peer = await startPeer(h);
    const drainTimeoutSec = 10;
    const m = await startMonitor(h, { ...statsConfig, lifecycle: { drainTimeoutSec } });
    const truth = await recordTotals(h, await monitorRedisPort(m));
    await waitUntil(
      'admin channel connected',
      async () => (await m.health()).body.turnserver.admin === 'connected',
      5000,
    );
    const auth = { authorization: `Bearer ${STATS_API_KEY}` };
    const turnPid = (await m.health()).body.turnserver.pid as number;

    // A long relay (outlives the deadline) and a short one (ends on its own while draining).
    void runUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      messages: 4000,
      length: 100,
      extraArgs: ['-z', '10', '-L', '127.0.0.2'],
      timeoutMs: 60_000,
    });
    // Both of uclient's allocations (its probe and the relay's own): a drain must not catch it half set up.
    await waitUntil(
      'long relay open',
      async () => (await usage(m)).filter((r) => r.endedAt === null).length >= 2,
      10_000,
    );
    const before = new Set((await usage(m)).map((r) => r.allocationId as string));
    const openBefore = (await usage(m)).filter((r) => r.endedAt === null).length;
    const short = runUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      messages: 300,
      length: 100,
      extraArgs: ['-z', '10', '-L', '127.0.0.3'],
    });
    await waitUntil(
      'short relay open',
      async () => (await usage(m)).filter((r) => r.endedAt === null).length >= openBefore + 2,
      10_000,
    );

    const t0 = Date.now();
    m.tracked.child.kill('SIGTERM');
    await waitUntil('draining', async () => (await m.health()).body.draining?.then === 'stop', 3000);
    assert.equal((await m.get('/turncredential', { headers: auth })).status, 503, 'no credential while draining');

    // New allocations: one attempt every 500 ms (each from its own source address, so parallel
    // uclients do not collide); the first refused one says when refusing began.
    const attempts = await Promise.all(
      Array.from({ length: 14 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, i * 500));
        const startedAt = Date.now();
        const r = await runUclient(h, {
          turnPort: m.turnPort,
          peerPort: peer.port,
          ...USER,
          messages: 1,
          length: 20,
          extraArgs: ['-L', `127.0.0.${10 + i}`],
          timeoutMs: 15_000,
        });
        return { startedAt, refused: r.code !== 0 };
      }),
    );
    const refusedAt = Math.min(...attempts.filter((a) => a.refused).map((a) => a.startedAt));
    assert.ok(
      attempts.slice(-3).every((a) => a.refused),
      'once refusing, every later attempt is refused',
    );
    assert.ok(Number.isFinite(refusedAt), 'a new allocation was refused while draining');
    assert.ok(refusedAt - t0 <= 6000, `refused ${refusedAt - t0} ms after the drain began`);

    assert.equal((await short).code, 0, 'the short relay goes on to its own end');
    const exit = await waitExit(m.tracked, (drainTimeoutSec + 15) * 1000);
    assert.equal(exit.code, 0);
    assert.ok(Date.now() - t0 >= drainTimeoutSec * 1000 - 300, 'the long relay kept the host draining to its deadline');
    assert.equal(isAlive(turnPid), false);
    assert.deepEqual(processesMentioning(m.dataDir), []);

    const rows = JSON.parse(
      (await h.run('cli', process.execPath, [monitorBin, 'usage', '--config', m.configFile, '--format', 'json']))
        .output,
    ) as any[];
    const drained = rows.filter((r) => r.endReason === 'drained');
    assert.ok(drained.length >= 1, 'the long relay was cancelled at the deadline');
    assert.ok(
      rows.some((r) => !before.has(r.allocationId) && r.endReason === 'deleted'),
      'the short relay was recorded deleted',
    );
    for (const r of drained) {
      const t = truth.totals.get(r.allocationId);
      assert.ok(t?.client && t.peer, `coturn sent totals for ${r.allocationId}`);
      assert.deepEqual([r.rcvp, r.rcvb, r.sentp, r.sentb], t.client, "client totals are coturn's");
      assert.deepEqual([r.peerRcvp, r.peerRcvb, r.peerSentp, r.peerSentb], t.peer, "peer totals are coturn's");
      assert.equal(r.complete, true);
    }
    console.log(`drain: new allocations refused ${refusedAt - t0} ms after SIGTERM`);
  },
  { timeout: 90_000 },
);
