import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { UsageEvent } from '../../src/stats/events.js';
import { UsagePipeline } from '../../src/stats/pipeline.js';

const status = (id: string, s: 'new' | 'deleted', at: number): UsageEvent => ({
  source: 'redis',
  at,
  realm: 'r',
  username: 'u',
  allocationId: id,
  kind: 'status',
  status: s,
  lifetime: s === 'new' ? 600 : null,
  transport: null,
  local: null,
  remote: null,
});
const traffic = (id: string, at: number): UsageEvent => ({
  source: 'redis',
  at,
  realm: 'r',
  username: 'u',
  allocationId: id,
  kind: 'traffic',
  rcvp: 1,
  rcvb: 100,
  sentp: 1,
  sentb: 100,
});

function pipeline(t: { after(fn: () => void): void }, checkpointMs = 300): UsagePipeline {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tm-pipeline-'));
  const p = new UsagePipeline({
    dbFile: path.join(dir, 'usage.db'),
    source: 'redis',
    checkpointMs,
    deleteGraceMs: 200,
    registry: new Registry(),
    log: pino({ level: 'silent' }),
    now: Date.now,
  });
  p.open();
  p.setRun('run1');
  t.after(() => {
    p.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return p;
}

const stored = (p: UsagePipeline) =>
  p.store!.db.prepare('SELECT allocation_id AS id, ended_at AS ended, rcvb FROM allocations').all() as {
    id: string;
    ended: number | null;
    rcvb: number;
  }[];

test('flushes are scheduled by changes: a new record within one flush, open ones at the checkpoint, no timer when idle', async (t) => {
  const p = pipeline(t);
  p.scheduleFlushes();
  await sleep(120);
  assert.equal(p.flushScheduled, false, 'nothing changed: no timer');

  p.ingest(status('1', 'new', Date.now()));
  assert.equal(p.flushScheduled, true);
  await sleep(120);
  assert.equal(stored(p).length, 1, 'a new record is written within one flush');

  p.ingest(traffic('1', Date.now()));
  await sleep(500); // past checkpointMs
  assert.equal(stored(p)[0].rcvb, 100, 'an open record is checkpointed');
  await sleep(400);
  assert.equal(p.flushScheduled, false, 'written and nothing due: the timer stopped');
});

test('a deleted allocation waiting for its totals keeps a timer until the grace closes it', async (t) => {
  const p = pipeline(t);
  p.scheduleFlushes();
  p.ingest(status('2', 'new', Date.now()));
  p.ingest(status('2', 'deleted', Date.now()));
  await sleep(150);
  assert.equal(stored(p)[0].ended, null, 'still waiting for the totals');
  assert.equal(p.flushScheduled, true, 'the grace is timed');
  await sleep(900);
  assert.notEqual(stored(p)[0].ended, null, 'closed with its sums after the grace');
  assert.equal(p.flushScheduled, false);
});
