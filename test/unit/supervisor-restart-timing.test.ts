import assert from 'node:assert/strict';
import { once } from 'node:events';
import { test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { ManagedChild, type ChildExit, type ChildRun } from '../../src/process/managed-child.js';

// A real child process (a sleeping node) with a probe that answers once it is "up": the
// restart timing of ManagedChild without turnserver.
test('a crashed child is respawned restartDelayMs after its exit, its spec prepared just before', async () => {
  const restartDelayMs = 400;
  const prepareMs = 40; // rendering the conf: done ahead, so it does not delay the restart
  let upAt = Infinity;
  const child = new ManagedChild({
    name: 'sleeper',
    logger: createLogger('silent'),
    spawnSpec: async () => {
      await new Promise((r) => setTimeout(r, prepareMs));
      return { file: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'] };
    },
    probe: async () => Date.now() >= upAt,
    findOrphans: () => [],
    onLine: () => undefined,
    restartDelayMs,
    maxRestartDelayMs: 10_000,
    stopTimeoutMs: 2000,
    probeIntervalMs: 10_000,
    readyTimeoutMs: 10_000,
  });
  try {
    upAt = 0;
    await child.start();
    const [exit, spawned, ready] = [once(child, 'exit'), once(child, 'spawn'), once(child, 'ready')];
    process.kill(child.pid!, 'SIGKILL');
    const [{ at }] = (await exit) as [ChildExit];
    upAt = Infinity;
    const [run] = (await spawned) as [ChildRun];
    const late = run.startedAt.getTime() - at.getTime() - restartDelayMs;
    assert.ok(late >= 0 && late < prepareMs - 10, `respawned ${late} ms after exit + restartDelayMs`);
    const readyAfter = Date.now() + 100;
    upAt = readyAfter;
    await ready;
    const noticed = Date.now() - readyAfter;
    assert.ok(noticed < 60, `an answering child is noticed within ${noticed} ms`);
  } finally {
    await child.stop();
  }
});
