import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { ManagedChild, type ChildExit, type ChildRun } from '../../src/process/managed-child.js';

// A real child process (a sleeping node) with a probe that answers once it is "up": the
// restart timing of ManagedChild without turnserver. The margins are wide (a loaded CI machine
// fires timers late): what is asserted is the order of things, and that preparing the spec
// (slow here on purpose) does not delay the restart by its own length.
test('a crashed child is respawned restartDelayMs after its exit, its spec prepared just before', async () => {
  const restartDelayMs = 1000;
  const prepareLeadMs = 600;
  const prepareMs = 400; // rendering the conf: done ahead, so it does not delay the restart
  let upAt = Infinity;
  let prepared: { from: number; to: number } | null = null;
  const probesAfterUp: boolean[] = [];
  const child = new ManagedChild({
    name: 'sleeper',
    logger: createLogger('silent'),
    spawnSpec: async () => {
      const from = Date.now();
      await new Promise((r) => setTimeout(r, prepareMs));
      prepared = { from, to: Date.now() };
      return { file: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'] };
    },
    probe: async () => {
      const up = Date.now() >= upAt;
      if (Number.isFinite(upAt) && upAt > 0 && up) probesAfterUp.push(up);
      return up;
    },
    findOrphans: () => [],
    onLine: () => undefined,
    restartDelayMs,
    maxRestartDelayMs: 10_000,
    prepareLeadMs,
    stopTimeoutMs: 2000,
    probeIntervalMs: 10_000,
    readyTimeoutMs: 10_000,
  });
  try {
    upAt = 0;
    await child.start();
    prepared = null;
    const [exit, spawned, ready] = [once(child, 'exit'), once(child, 'spawn'), once(child, 'ready')];
    process.kill(child.pid!, 'SIGKILL');
    const [{ at }] = (await exit) as [ChildExit];
    upAt = Infinity;
    const [run] = (await spawned) as [ChildRun];
    const dueAt = at.getTime() + restartDelayMs;
    const spec = prepared as { from: number; to: number } | null;
    assert.ok(spec, 'the spec was prepared for the restart');
    assert.ok(spec.from < dueAt - prepareMs / 2, `preparing began ${dueAt - spec.from} ms before the restart was due`);
    assert.ok(run.startedAt.getTime() >= spec.to, 'the child starts from the prepared spec');
    const late = run.startedAt.getTime() - dueAt;
    assert.ok(late >= 0, `respawned ${-late} ms before exit + restartDelayMs`);
    assert.ok(late < prepareMs / 2, `respawned ${late} ms after exit + restartDelayMs: preparing delayed it`);
    const answersAt = Date.now() + 100;
    upAt = answersAt;
    await ready;
    const noticed = Date.now() - answersAt;
    // Far below probeIntervalMs: a starting child is probed often, not at the liveness pace.
    assert.ok(noticed < 250, `an answering child is noticed within ${noticed} ms`);
    assert.equal(probesAfterUp.length, 1, 'the first probe after the child answers marks it ready');
  } finally {
    await child.stop();
  }
});
