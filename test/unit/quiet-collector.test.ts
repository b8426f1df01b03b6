import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { getHeapStatistics } from 'node:v8';
import { QuietCollector } from '../../src/process/quiet-collector.js';

const MB = 1024 * 1024;

/** Garbage that reaches the old generation: kept across a few turns, then dropped. */
async function makeOldGarbage(mb: number): Promise<void> {
  let keep: object[] | null = [];
  for (let i = 0; i < mb * 10_000; i++) keep.push({ i, s: `x${i}`, a: [i, i, i] });
  await sleep(10);
  keep = null;
}

test('after a burst, a quiet spell collects the garbage it left', async () => {
  const c = new QuietCollector({ armAfter: 100, quietMs: 50, minGarbageBytes: 4 * MB });
  await makeOldGarbage(20);
  const before = getHeapStatistics().used_heap_size;
  for (let i = 0; i < 150; i++) c.note();
  await sleep(200);
  assert.equal(c.collections, 1);
  assert.ok(getHeapStatistics().used_heap_size < before - 4 * MB, 'the heap shrank');
  c.stop();
});

test('no collection while activity goes on, nor before armAfter, nor without enough garbage', async () => {
  const busy = new QuietCollector({ armAfter: 10, quietMs: 40, minGarbageBytes: 0 });
  const ticker = setInterval(() => busy.note(), 5);
  for (let i = 0; i < 10; i++) busy.note();
  await sleep(150);
  assert.equal(busy.collections, 0, 'still busy: nothing collected');
  clearInterval(ticker);
  await sleep(150);
  assert.equal(busy.collections, 1, 'collected once quiet');
  busy.stop();

  const few = new QuietCollector({ armAfter: 1000, quietMs: 20, minGarbageBytes: 0 });
  for (let i = 0; i < 999; i++) few.note();
  await sleep(80);
  assert.equal(few.collections, 0, 'not armed');
  few.stop();

  const clean = new QuietCollector({ armAfter: 1, quietMs: 20, minGarbageBytes: 512 * MB });
  clean.note();
  await sleep(80);
  assert.equal(clean.collections, 0, 'too little garbage');
  clean.stop();
});

test('stop() cancels a pending look', async () => {
  const c = new QuietCollector({ armAfter: 1, quietMs: 30, minGarbageBytes: 0 });
  c.note();
  c.stop();
  await sleep(100);
  assert.equal(c.collections, 0);
});

test('a late look (the thread was blocked or stopped) is no quiet spell', async () => {
  const c = new QuietCollector({ armAfter: 1, quietMs: 30, minGarbageBytes: 0 });
  c.note();
  const until = performance.now() + 100;
  while (performance.now() < until); // blocked past the look
  await sleep(5);
  assert.equal(c.collections, 0, 'not on the late look');
  await sleep(80);
  assert.equal(c.collections, 1, 'on the next, on time');
  c.stop();
});
