import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapStatistics } from 'node:v8';
import { QuietCollector } from '../../src/process/quiet-collector.js';
import { waitUntil } from '../../src/process/wait.js';

const MB = 1024 * 1024;

/** Garbage that reaches the old generation: kept across a few turns, then dropped. */
async function makeOldGarbage(mb: number): Promise<void> {
  let keep: object[] | null = [];
  for (let i = 0; i < mb * 10_000; i++) keep.push({ i, s: `x${i}`, a: [i, i, i] });
  await sleep(10);
  keep = null;
}

test('after a burst, a quiet spell collects the garbage it left', async () => {
  const c = new QuietCollector({ armAfter: 100, quietMs: 50 });
  await makeOldGarbage(20);
  const before = getHeapStatistics().used_heap_size;
  for (let i = 0; i < 150; i++) c.note();
  await waitUntil('a collection', () => c.collections === 1, 5000, 10);
  assert.ok(getHeapStatistics().used_heap_size < before - 4 * MB, 'the heap shrank');
  c.stop();
});

test('no collection while activity goes on, nor before armAfter', async () => {
  const busy = new QuietCollector({ armAfter: 10, quietMs: 300 });
  const ticker = setInterval(() => busy.note(), 5);
  for (let i = 0; i < 10; i++) busy.note();
  await sleep(700);
  assert.equal(busy.collections, 0, 'still busy: nothing collected');
  clearInterval(ticker);
  await waitUntil('a collection once quiet', () => busy.collections === 1, 5000, 10);
  busy.stop();

  const few = new QuietCollector({ armAfter: 1000, quietMs: 20 });
  for (let i = 0; i < 999; i++) few.note();
  await sleep(100);
  assert.equal(few.collections, 0, 'not armed');
  few.stop();
});

test('stop() cancels a pending look', async () => {
  const c = new QuietCollector({ armAfter: 1, quietMs: 30 });
  c.note();
  c.stop();
  await sleep(100);
  assert.equal(c.collections, 0);
});

test('a late look (the thread was blocked or stopped) is no quiet spell', async () => {
  const c = new QuietCollector({ armAfter: 1, quietMs: 100 });
  c.note();
  const until = performance.now() + 300;
  while (performance.now() < until); // blocked well past the look
  await sleep(20);
  assert.equal(c.collections, 0, 'not on the late look');
  await waitUntil('a collection on a later look', () => c.collections === 1, 5000, 10);
  c.stop();
});
