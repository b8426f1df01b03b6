import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import type { Worker } from 'node:worker_threads';
import { harnessTest } from '../harness/harness.js';
import { openPipeline } from '../harness/pipeline.js';
import { startRedis } from '../harness/services.js';
import { RedisSource } from '../../src/stats/sources/redis/redis-source.js';
import { BATCH_BYTES } from '../../src/stats/sources/redis/redis-reader-protocol.js';
import { waitUntil } from '../../src/process/wait.js';
import { freePort } from '../../src/process/ports.js';

const log = pino({ level: 'silent' });

type H = Parameters<Parameters<typeof harnessTest>[1]>[0];

/** A real pipeline (SQLite in the test dir) and a RedisSource (reader thread) on `port` feeding it; not started. */
function sourceAndPipeline(h: H, port: number) {
  const pipeline = openPipeline(`${h.dir}/usage.db`, log, 'run1');
  const source = new RedisSource(
    { host: '127.0.0.1', port, db: 0, password: null, tls: false },
    pipeline,
    log,
    Date.now,
  );
  h.onCleanup(async () => {
    await source.stop();
    pipeline.close();
  });
  return { source, pipeline };
}

/** A real redis-server, a started source feeding a pipeline, and a publisher. */
async function setup(h: H) {
  const redis = await startRedis(h);
  const { source, pipeline } = sourceAndPipeline(h, redis.port);
  let malformed = 0;
  source.on('malformed', () => malformed++);
  await source.start();
  assert.equal(source.state, 'subscribed');
  const pub = new Redis({ port: redis.port, host: '127.0.0.1' });
  h.onCleanup(async () => void pub.disconnect());
  return { source, pipeline, pub, malformed: () => malformed };
}

const topic = (id: number, kind: string) =>
  `turn/realm/r.org/user/1795000000:dev${id}/allocation/${String(id).padStart(18, '0')}/${kind}`;

harnessTest(
  'reader thread: events across many batches arrive in order and exact; oversized and malformed messages are counted, not fatal',
  async (h) => {
    const { source, pipeline, pub, malformed } = await setup(h);
    // 50 allocations × 1,000 increments, interleaved: far more than one batch of bytes.
    const p = pub.pipeline();
    for (let id = 1; id <= 50; id++) p.publish(topic(id, 'status'), 'new lifetime=600, type=UDP');
    for (let k = 0; k < 1000; k++)
      for (let id = 1; id <= 50; id++)
        p.publish(topic(id, k % 2 ? 'traffic' : 'traffic/peer'), `rcvp=1, rcvb=${id}, sentp=2, sentb=${k}`);
    p.publish(topic(1, 'traffic'), 'x'.repeat(BATCH_BYTES * 2)); // one message larger than a batch
    await p.exec();
    await waitUntil('all received', () => source.received === 50 + 50_000 + 1, 30_000).catch((e) => {
      throw new Error(`${e.message}: ${source.received}`);
    });
    assert.equal(malformed(), 1, 'the oversized message is malformed: not a counter payload');
    const open = pipeline.model.openRecords();
    assert.equal(open.length, 50);
    const sumK = (odd: boolean) =>
      Array.from({ length: 500 }, (_, i) => 2 * i + (odd ? 1 : 0)).reduce((a, b) => a + b, 0);
    for (const r of open) {
      const id = Number(r.allocationId);
      assert.deepEqual(r.client, [500, 500 * id, 1000, sumK(true)], `client counters of ${id}`);
      assert.deepEqual(r.peer, [500, 500 * id, 1000, sumK(false)], `peer counters of ${id}`);
    }
  },
);

harnessTest(
  'reader thread dies: the loss is reported as a gap, a new reader subscribes again, later events count',
  async (h) => {
    const { source, pipeline, pub } = await setup(h);
    await pub.publish(topic(7, 'status'), 'new lifetime=600');
    await waitUntil('first event', () => source.received === 1);
    const gap = once(source, 'gap');
    await (source as unknown as { worker: Worker }).worker.terminate();
    await gap;
    assert.equal(source.state, 'disconnected');
    while ((source.state as string) !== 'subscribed') await once(source, 'state');
    assert.equal(source.reconnects, 1);
    await pub.publish(topic(7, 'traffic'), 'rcvp=1, rcvb=2, sentp=3, sentb=4');
    await waitUntil('event after the restart', () => source.received === 2);
    assert.deepEqual(pipeline.model.openRecords()[0].client, [1, 2, 3, 4]);
    await source.stop();
    assert.equal(source.state, 'stopped');
    await source.stop(); // idempotent
  },
);

harnessTest(
  'Redis down when the source starts: it says so, keeps trying, and subscribes once Redis is up',
  async (h) => {
    const port = await freePort();
    const { source, pipeline } = sourceAndPipeline(h, port);
    await source.start();
    assert.notEqual(source.state, 'subscribed');
    await startRedis(h, port);
    while ((source.state as string) !== 'subscribed') await once(source, 'state');
    assert.equal(source.reconnects, 0, 'the first subscription is not a reconnection');
    const pub = new Redis({ port, host: '127.0.0.1' });
    h.onCleanup(async () => void pub.disconnect());
    await pub.publish(topic(3, 'status'), 'new lifetime=600');
    await waitUntil('event once Redis is up', () => source.received === 1);
    assert.equal(pipeline.model.openRecords()[0].allocationId, String(3).padStart(18, '0'));
  },
);
