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
  // turnserver's own lines arrive as our JSON log lines, with a level taken from the line.
  const turnLines = m.logs.filter((e) => e.component === 'turnserver');
  assert.ok(turnLines.some((e) => e.level === 'info' && /Relay ports initialization done/.test(e.msg)));
  // A WARNING known to be harmless in the rendered conf (one listening address) is info.
  assert.ok(turnLines.some((e) => e.level === 'info' && /STUN CHANGE_REQUEST/.test(e.msg)));
  const metrics = await m.get('/metrics');
  assert.match(metrics.text, /^turn_monitor_turnserver_up 1$/m);
  const exit = await m.stop();
  assert.equal(exit.code, 0);
});

harnessTest('an idle monitor started and stopped with SIGINT (drain on, as by default) logs no warning', async (h) => {
  const m = await startMonitor(h, { lifecycle: { drainTimeoutSec: 10 } });
  await m.waitForEvent('ready');
  await m.waitForLog((e) => e.event === 'admin-connected');
  const exit = await m.stop('SIGINT');
  assert.equal(exit.code, 0);
  assert.ok(
    m.logs.some((e) => e.event === 'drain-finished'),
    'the stop drained',
  );
  const warnings = m.logs.filter((e) => e.level === 'warn' || e.level === 'error' || e.level === 'fatal');
  assert.deepEqual(
    warnings.map((e) => `${e.component}: ${e.msg}`),
    [],
  );
});
