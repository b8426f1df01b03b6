import assert from 'node:assert/strict';
import { harnessTest, waitExit } from '../harness/harness.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';
import { STATS_API_KEY, STATS_USER as USER, statsConfig, usage } from '../harness/statsdb.js';
import { isAlive, processesMentioning } from '../../src/process/pids.js';
import { waitUntil } from '../../src/process/wait.js';

// What the monitor does itself in a drain (the admin channel's part: lifecycle-drain-admin.test.ts).
harnessTest(
  'turn-monitor drain then POST /drain/cancel; SIGTERM drains: no credential, a running relay ends on its own and is recorded, then exit 0 with no child left',
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, {
      http: statsConfig.http,
      turnserver: statsConfig.turnserver,
      lifecycle: { drainTimeoutSec: 7 },
    });
    const auth = { authorization: `Bearer ${STATS_API_KEY}` };
    const post = (p: string, body?: object) =>
      m.get(p, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify(body ?? {}),
      });
    assert.equal((await m.get('/turncredential', { headers: auth })).status, 200);

    const turnPid = (await m.health()).body.turnserver.pid as number;
    const relay = runUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      messages: 100,
      length: 100,
      extraArgs: ['-z', '5'],
    });
    // Both of uclient's allocations (its probe and the relay's own): a drain must not catch it half set up.
    await waitUntil('relay open', async () => (await usage(m)).filter((r) => r.endedAt === null).length >= 2, 10_000);
    // `turn-monitor drain` (POST /drain, then progress lines until the drain ends).
    const cli = h.run(
      'drain-cli',
      process.execPath,
      [monitorBin, 'drain', '--config', m.configFile, '--timeout', '60', '--then', 'restart'],
      { timeoutMs: 20_000 },
    );
    await waitUntil('draining', async () => (await m.health()).body.draining?.then === 'restart', 5000);
    const refused = await fetch(`${m.httpUrl}/turncredential`, { headers: auth });
    assert.equal(refused.status, 503);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1, 'Retry-After');
    assert.match((await m.get('/metrics')).text, /^turn_monitor_draining 1$/m);
    assert.equal((await post('/drain', {})).status, 409);
    assert.equal((await post('/drain/cancel')).body.cancelled, true);
    const shown = await cli;
    assert.equal(shown.code, 0, shown.output);
    assert.match(shown.output, /^draining \(then restart\): \d+ open allocation\(s\), deadline in \d+ s$/m);
    assert.match(shown.output, /drain finished/);
    assert.equal((await m.get('/turncredential', { headers: auth })).status, 200, 'serving again');
    assert.equal((await m.health()).body.draining, null);

    const signalledAt = Date.now();
    m.tracked.child.kill('SIGTERM');
    await waitUntil('draining in /health', async () => (await m.health()).body.draining?.then === 'stop', 3000);
    const health = (await m.health()).body;
    assert.ok(
      health.draining.openAllocations >= 1 && Date.parse(health.draining.deadline) > Date.parse(health.draining.since),
    );
    assert.equal((await m.get('/turncredential', { headers: auth })).status, 503, 'no credential while draining');
    const done = await relay;
    assert.equal(done.code, 0, 'the existing relay goes on to its own end');
    await waitUntil(
      'relay recorded deleted',
      async () => (await usage(m)).some((r) => r.endReason === 'deleted'),
      5000,
    );
    const exit = await waitExit(m.tracked, 15_000); // a second SIGTERM would end the drain at once
    assert.equal(exit.code, 0);
    assert.ok(Date.now() - signalledAt >= 7000 - 200, 'the probe allocation kept it draining to the deadline');
    assert.equal(isAlive(turnPid), false);
    assert.deepEqual(processesMentioning(m.dataDir), []);
  },
  { timeout: 60_000 },
);
