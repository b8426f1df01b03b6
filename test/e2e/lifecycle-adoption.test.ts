import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { startMonitor } from '../harness/monitor.js';
import { assertExactTotals, withTruth } from '../harness/relay.js';
import { runUclient, startPeer, type UclientOptions } from '../harness/services.js';
import { STATS_USER as USER, usage } from '../harness/statsdb.js';
import { isAlive } from '../../src/process/pids.js';
import { waitUntil } from '../../src/process/wait.js';

harnessTest(
  'kill -9 of the monitor during a long relay (default source, log rotating): the same turnserver serves on, no added loss, every allocation exact, none monitor-restart, none twice',
  async (h, t) => {
    const peer = await startPeer(h);
    // A small rotation size: turnserver's verbose log is rotated several times during the relay.
    const { config, truth } = await withTruth(h, { logMaxBytes: 6000 });
    const m1 = await startMonitor(h, config);
    const health = (await m1.health()).body;
    assert.equal(health.stats.source, 'log', "default 'auto' on coturn 4.6.1");
    const turnPid = health.turnserver.pid as number;
    const relay: UclientOptions = {
      turnPort: m1.turnPort,
      peerPort: peer.port,
      ...USER,
      clients: 2,
      messages: 700,
      length: 100,
      extraArgs: ['-z', '5'],
    };
    const during = runUclient(h, relay);
    await waitUntil(
      'allocations open and checkpointed',
      async () => (await usage(m1)).filter((r) => r.endedAt === null).length >= 4,
      15_000,
    ); // each client: a probe allocation, then the relaying one
    const openAtKill = (await usage(m1)).filter((r) => r.endedAt === null).map((r) => r.allocationId as string);
    process.kill(m1.pid, 'SIGKILL');
    await m1.exited;
    const m2 = await startMonitor(h, {}, { rawConfig: m1.config });
    const adopted = await m2.waitForLog((e) => e.event === 'adopted' && e.component === 'supervisor');
    assert.equal(adopted.childPid, turnPid);
    const withKill = await during;
    assert.equal(withKill.code, 0, withKill.output.slice(-500));
    const without = await runUclient(h, relay);
    t.diagnostic(
      `loss with the kill ${withKill.lostPackets} packets (${withKill.lossPercent} %), without ${without.lostPackets}`,
    );
    assert.ok(
      (withKill.lostPackets ?? 1) <= (without.lostPackets ?? 0),
      'no more loss than the same relay without the kill',
    );
    // Each client's relaying allocation (open at the kill) is freed; its probe allocation never is.
    const spanning = () => openAtKill.filter((id) => truth.deleted.has(id));
    const rows = await assertExactTotals(m2, truth, assert.deepEqual, () => spanning().length >= 2);
    assert.ok(
      spanning().every((id) => rows.some((r) => r.allocationId === id)),
      'the allocations relaying through the kill are compared',
    );
    const all = await usage(m2);
    assert.equal(all.filter((r) => r.endReason === 'monitor-restart').length, 0);
    const keys = all.map((r) => `${r.run}/${r.allocationId}`);
    assert.equal(new Set(keys).size, keys.length, 'none counted twice');
    assert.ok(
      [...m1.logs, ...m2.logs].some((e) => e.event === 'log-rotated'),
      'the log was rotated during the relay',
    );
    assert.ok(existsSync(path.join(m2.dataDir, 'turnserver.log.1')));
    assert.equal((await m2.health()).body.turnserver.pid, turnPid, 'the same turnserver throughout');
    assert.equal((await m2.health()).body.turnserver.configStale, false);
    assert.equal((await m2.stop()).code, 0);
    assert.equal(isAlive(turnPid), false);
  },
  { timeout: 90_000 },
);

harnessTest(
  'a conf change while turnserver is adopted: configStale in /health, then applied by a drain-restart',
  async (h) => {
    const m1 = await startMonitor(h);
    const turnPid = (await m1.health()).body.turnserver.pid as number;
    process.kill(m1.pid, 'SIGKILL');
    await m1.exited;
    const changed = {
      ...m1.config,
      turnserver: { ...(m1.config.turnserver as object), extraConfig: ['max-bps=1000000'], restartDelayMs: 200 },
      lifecycle: { drainTimeoutSec: 1 },
    };
    const m2 = await startMonitor(h, {}, { rawConfig: changed, configFile: path.join(h.dir, 'changed.json') });
    const adopted = await m2.waitForLog((e) => e.event === 'adopted' && e.component === 'supervisor');
    assert.equal(adopted.childPid, turnPid);
    await m2.waitForLog((e) => e.event === 'config-stale');
    await m2.waitForLog((e) => e.event === 'drain-started' && e.then === 'restart');
    const ready = await m2.waitForLog(
      (e) => e.event === 'ready' && e.component === 'supervisor' && e.childPid !== turnPid,
      { timeoutMs: 10_000 },
    );
    await m2.waitForLog((e) => e.event === 'drain-finished');
    const body = (await m2.health()).body;
    assert.equal(body.turnserver.pid, ready.childPid);
    assert.equal(body.turnserver.configStale, false);
    assert.equal(body.draining, null);
    assert.match(readFileSync(path.join(m2.dataDir, 'turnserver.conf'), 'utf8'), /^max-bps=1000000$/m);
    assert.equal((await m2.stop()).code, 0);
  },
);
