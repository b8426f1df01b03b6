import assert from 'node:assert/strict';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { isAlive, processesMentioning, zombieChildren } from '../../src/process/pids.js';

const turnserversOf = (m: MonitorProcess) =>
  processesMentioning(path.join(m.dataDir, 'turnserver.conf')).filter((pid) => pid !== m.pid);

harnessTest('kill -9 of turnserver: answering again within 3.5 s with a new pid, restarts=1', async (h) => {
  const m = await startMonitor(h);
  const first = await m.waitForEvent('ready');
  const from = m.logs.length;
  const killedAt = Date.now();
  process.kill(first.childPid as number, 'SIGKILL');
  const exit = await m.waitForEvent('exit', { from });
  assert.equal(exit.signal, 'SIGKILL');
  const scheduled = await m.waitForEvent('restart-scheduled', { from });
  assert.equal(scheduled.delayMs, 3000, 'a child that had served is restarted after the fixed delay');
  const down = await m.health();
  assert.equal(down.status, 503, '/health is 503 while turnserver is not serving');
  assert.equal(down.body.turnserver.state, 'restarting');
  const ready = await m.waitForEvent('ready', { from });
  assert.ok(await m.stunAnswers(), 'STUN answers again');
  const elapsed = Date.now() - killedAt;
  assert.ok(elapsed <= 3500, `serving again after ${elapsed} ms`);
  assert.notEqual(ready.childPid, first.childPid);
  const health = await m.health();
  assert.equal(health.status, 200);
  assert.equal(health.body.turnserver.restarts, 1);
  assert.equal(health.body.turnserver.pid, ready.childPid);
  assert.equal(health.body.turnserver.lastExit.signal, 'SIGKILL');
  assert.equal((await m.stop()).code, 0);
});

harnessTest(
  '20 kills in a row: 20 restarts, never two turnservers, no zombies',
  async (h) => {
    // A short delay keeps the test fast; the fixed-delay rule itself is checked above.
    const m = await startMonitor(h, { turnserver: { restartDelayMs: 100 } });
    let ready = await m.waitForEvent('ready');
    let maxConcurrent = 0;
    const watcher = setInterval(() => {
      maxConcurrent = Math.max(maxConcurrent, turnserversOf(m).length);
    }, 10);
    try {
      for (let i = 0; i < 20; i++) {
        const from = m.logs.length;
        process.kill(ready.childPid as number, 'SIGKILL');
        ready = await m.waitForEvent('ready', { from });
      }
    } finally {
      clearInterval(watcher);
    }
    assert.equal(maxConcurrent, 1, 'never two turnserver processes at once');
    assert.deepEqual(zombieChildren(m.pid), [], 'every killed child was reaped');
    const health = await m.health();
    assert.equal(health.body.turnserver.restarts, 20);
    assert.equal(turnserversOf(m).length, 1);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);

harnessTest('a SIGSTOPped (hung) turnserver is detected and replaced', async (h) => {
  const m = await startMonitor(h, { turnserver: { probeIntervalMs: 300, probeTimeoutMs: 300, restartDelayMs: 200 } });
  const first = await m.waitForEvent('ready');
  const from = m.logs.length;
  process.kill(first.childPid as number, 'SIGSTOP');
  const hung = await m.waitForEvent('hung', { from });
  assert.equal(hung.childPid, first.childPid);
  const ready = await m.waitForEvent('ready', { from });
  assert.notEqual(ready.childPid, first.childPid);
  assert.equal(isAlive(first.childPid as number), false, 'the hung child is gone');
  assert.ok(await m.stunAnswers());
  assert.equal((await m.stop()).code, 0);
});

// Issue 13: a turnserver of ours that still serves is adopted (see stats-resilience and
// lifecycle-adoption tests); one that does not answer STUN is still stopped and replaced.
harnessTest(
  'a turnserver orphaned by a killed monitor that does not answer STUN is replaced, not doubled; a serving one is adopted',
  async (h) => {
    const m1 = await startMonitor(h);
    const orphan = (await m1.waitForEvent('ready')).childPid as number;
    process.kill(m1.pid, 'SIGKILL');
    await m1.exited;
    assert.ok(isAlive(orphan), 'turnserver outlives a SIGKILLed monitor');
    const m2 = await startMonitor(h, {}, { rawConfig: m1.config });
    const adopted = await m2.waitForLog((e) => e.event === 'adopted' && e.component === 'supervisor');
    assert.equal(adopted.childPid, orphan, 'a serving turnserver is adopted');
    process.kill(m2.pid, 'SIGKILL');
    await m2.exited;
    process.kill(orphan, 'SIGSTOP'); // ours, but it does not answer
    const m3 = await startMonitor(h, {}, { rawConfig: m1.config });
    const orphanLog = await m3.waitForLog((e) => e.event === 'orphan' && e.component === 'supervisor');
    assert.equal(orphanLog.orphanPid, orphan);
    assert.equal(orphanLog.why, 'no-answer');
    const ready = await m3.waitForEvent('ready');
    assert.notEqual(ready.childPid, orphan);
    assert.equal(isAlive(orphan), false, 'the orphan was stopped');
    assert.deepEqual(turnserversOf(m3), [ready.childPid]);
    assert.equal((await m3.stop()).code, 0);
  },
);

harnessTest('SIGTERM: turnserver is stopped, no restart, the monitor exits 0', async (h) => {
  const m = await startMonitor(h);
  const ready = await m.waitForEvent('ready');
  const from = m.logs.length;
  const exit = await m.stop('SIGTERM');
  assert.equal(exit.code, 0);
  assert.equal(isAlive(ready.childPid as number), false);
  assert.equal(
    m.logs.slice(from).some((e) => e.event === 'restart-scheduled' || e.event === 'spawn'),
    false,
  );
  assert.deepEqual(turnserversOf(m), []);
});

harnessTest('SIGINT stops gracefully too', async (h) => {
  const m = await startMonitor(h);
  const ready = await m.waitForEvent('ready');
  assert.equal((await m.stop('SIGINT')).code, 0);
  assert.equal(isAlive(ready.childPid as number), false);
});

harnessTest(
  'a child that exits before it ever serves backs off (doubling), and the backoff resets once one serves',
  async (h) => {
    // A wrapper that runs the real turnserver unless a "broken" marker file exists.
    const marker = path.join(h.dir, 'broken');
    const wrapper = path.join(h.dir, 'turnserver-wrapper');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ -e ${marker} ]; then echo "cannot start" >&2; exit 1; fi\nexec turnserver "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    const m = await startMonitor(h, { turnserver: { bin: wrapper, restartDelayMs: 100 } });
    const first = await m.waitForEvent('ready');
    const from = m.logs.length;
    writeFileSync(marker, '');
    process.kill(first.childPid as number, 'SIGKILL');
    const scheduled = () => m.logs.slice(from).filter((e) => e.event === 'restart-scheduled');
    await m.waitForLog(() => scheduled().length >= 4);
    const delays = scheduled()
      .slice(0, 4)
      .map((e) => e.delayMs);
    assert.deepEqual(delays, [100, 100, 200, 400], 'fixed delay after a served child, then doubling');
    rmSync(marker);
    const ready = await m.waitForEvent('ready', { from });
    const after = m.logs.length;
    process.kill(ready.childPid as number, 'SIGKILL');
    const again = await m.waitForEvent('restart-scheduled', { from: after });
    assert.equal(again.delayMs, 100, 'backoff reset after a child served');
    await m.waitForEvent('ready', { from: after });
    assert.equal((await m.stop()).code, 0);
  },
);
