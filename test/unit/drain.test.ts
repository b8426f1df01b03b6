import assert from 'node:assert/strict';
import { test } from 'node:test';
import pino from 'pino';
import { Drain, type DrainControl, type DrainDeps } from '../../src/drain/drain.js';
import { waitUntil } from '../../src/process/wait.js';

function fixture(open: string[], control: DrainControl | null, over: Partial<DrainDeps> = {}) {
  const calls: string[] = [];
  const deps: DrainDeps = {
    control,
    withdraw: async (held) => void calls.push(held ? 'withdraw' : 'publish'),
    pauseCredentials: (paused) => void calls.push(paused ? 'credentials-503' : 'credentials-ok'),
    openAllocations: () => [...open],
    restartTurnserver: async () => void calls.push('restart'),
    minAllocations: 0,
    log: pino({ level: 'silent' }),
    pollMs: 5,
    cancelGraceMs: 200,
    ...over,
  };
  return { drain: new Drain(deps), calls };
}

function fakeControl(calls: string[], open: string[]): DrainControl {
  return {
    refuseNewAllocations: async () => void calls.push('refuse'),
    resumeAllocations: async () => void calls.push('resume'),
    cancel: async (id) => {
      calls.push(`cancel ${id}`);
      open.splice(open.indexOf(id), 1); // coturn's delete events close it
    },
  };
}

test('drain: withdraw, 503, refuse, wait for the open allocations to end, then stop', async () => {
  const open = ['a', 'b'];
  const calls: string[] = [];
  const { drain, calls: steps } = fixture(open, fakeControl(calls, open));
  const done = drain.run(10, 'stop');
  await waitUntil('waiting', () => drain.status()?.openAllocations === 2);
  assert.deepEqual(steps, ['withdraw', 'credentials-503']);
  assert.deepEqual(calls, ['refuse']);
  assert.equal(drain.draining, true);
  open.length = 0; // the calls end on their own
  const outcome = await done;
  assert.deepEqual(outcome, { then: 'stop', cancelled: 0, aborted: false });
  assert.equal(drain.status(), null);
});

test('drain: at the deadline what is left is cancelled; then restart serves again', async () => {
  const open = ['a', 'b', 'c'];
  const calls: string[] = [];
  const { drain, calls: steps } = fixture(open, fakeControl(calls, open), { minAllocations: 0 });
  const outcome = await drain.run(0.05, 'restart');
  assert.deepEqual(outcome, { then: 'restart', cancelled: 3, aborted: false });
  assert.deepEqual(calls, ['refuse', 'cancel a', 'cancel b', 'cancel c', 'resume']);
  assert.deepEqual(steps, ['withdraw', 'credentials-503', 'restart', 'credentials-ok', 'publish']);
});

test('drain: minAllocations ends the wait early; cancel() calls a drain off; one drain at a time', async () => {
  const open = ['a', 'b'];
  const calls: string[] = [];
  const { drain } = fixture(open, fakeControl(calls, open), { minAllocations: 2 });
  assert.equal((await drain.run(10, 'restart')).cancelled, 2, 'min reached at once: the two are cancelled');

  const open2 = ['x'];
  const calls2: string[] = [];
  const f = fixture(open2, fakeControl(calls2, open2));
  const running = f.drain.run(10, 'stop');
  await assert.rejects(f.drain.run(10, 'stop'), /already running/);
  await waitUntil('draining', () => f.drain.draining);
  assert.equal(await f.drain.cancel(), true);
  assert.deepEqual(await running, { then: 'stop', cancelled: 0, aborted: true });
  assert.deepEqual(f.calls, ['withdraw', 'credentials-503', 'credentials-ok', 'publish']);
  assert.deepEqual(calls2, ['refuse', 'resume']);
  assert.equal(await f.drain.cancel(), false, 'nothing to call off');
});

test('drain without a control (no admin channel yet): waits, never cancels', async () => {
  const { drain } = fixture(['a'], null);
  assert.deepEqual(await drain.run(0.05, 'stop'), { then: 'stop', cancelled: 0, aborted: false });
});
