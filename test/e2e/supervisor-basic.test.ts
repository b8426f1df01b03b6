import assert from 'node:assert/strict';
import { harnessTest } from '../harness/harness.js';
import { startMonitor } from '../harness/monitor.js';

harnessTest('turnserver is serving within 2 s and /health reports it', async (h) => {
  const t0 = Date.now();
  const m = await startMonitor(h);
  const ready = await m.waitForEvent('ready');
  assert.ok(Date.parse(ready.time as string) - t0 < 2000 + 1500, 'ready soon after start');
  assert.equal(await m.stunAnswers(), true);
  const health = await m.health();
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'ok');
  assert.equal(health.body.turnserver.state, 'ready');
  assert.equal(health.body.turnserver.restarts, 0);
  const exit = await m.stop();
  assert.equal(exit.code, 0);
});
