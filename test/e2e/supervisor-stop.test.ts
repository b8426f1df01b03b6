import assert from 'node:assert/strict';
import path from 'node:path';
import { harnessTest, waitExit } from '../harness/harness.js';
import { repoRoot, startMonitor } from '../harness/monitor.js';
import { isAlive } from '../../src/process/pids.js';
import { waitUntil } from '../../src/process/wait.js';

const stubborn = path.join(repoRoot, 'test', 'fixtures', 'stubborn-turnserver.mjs');

harnessTest(
  'a child that ignores SIGTERM is SIGKILLed after stopTimeoutMs, and the monitor still exits 0',
  async (h) => {
    const m = await startMonitor(h, { turnserver: { bin: stubborn, stopTimeoutMs: 1000 } });
    const ready = await m.waitForEvent('ready');
    const from = m.logs.length;
    const exit = await m.stop('SIGTERM');
    assert.equal(exit.code, 0);
    const escalated = await m.waitForEvent('kill-escalated', { from });
    assert.equal(escalated.childPid, ready.childPid);
    const childExit = await m.waitForEvent('exit', { from });
    assert.equal(childExit.signal, 'SIGKILL');
    assert.equal(isAlive(ready.childPid as number), false);
  },
);

harnessTest('a second signal during a slow shutdown exits at once', async (h) => {
  const m = await startMonitor(h, { turnserver: { bin: stubborn, stopTimeoutMs: 10_000 } });
  const ready = await m.waitForEvent('ready');
  const from = m.logs.length;
  m.tracked.child.kill('SIGTERM');
  await m.waitForLog((e) => e.event === 'shutdown', { from });
  m.tracked.child.kill('SIGTERM');
  const exit = await waitExit(m.tracked, 3000);
  assert.equal(exit.code, 1);
  assert.ok(m.logs.some((e) => e.event === 'forced-exit'));
  await waitUntil('child killed by the forced exit', () => !isAlive(ready.childPid as number), 2000);
});
