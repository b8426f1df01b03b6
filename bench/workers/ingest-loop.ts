// The ingest path both ingest workers run (RedisSource → UsagePipeline → SQLite, the monitor's
// flush policy) and their drain loop: `ready` once subscribed, `done N` each time N, a multiple of
// the expected count, events are ingested AND committed.
import type { Logger } from 'pino';
import type { UsagePipeline } from '../../src/stats/pipeline.js';
import { RedisSource } from '../../src/stats/sources/redis/redis-source.js';
import { openPipeline } from '../../test/harness/pipeline.js';

/** The pipeline both ingest workers drive (test/harness/pipeline.ts), run `bench`. */
export const benchPipeline = (dbFile: string, log: Logger): UsagePipeline => openPipeline(dbFile, log, 'bench');

type Written = ReturnType<UsagePipeline['flush']>;

/**
 * Subscribes, prints `ready`, then flushes every 50 ms (the cadence of the monitor's own flush
 * timer while events keep coming) and looks for the backlog's end every few ms, so a drain ends
 * when its last event is committed, not up to a flush interval later. `onFlush` sees what each
 * flush wrote, `onDone` each drained backlog.
 */
export async function drainLoop(
  port: number,
  pipeline: UsagePipeline,
  log: Logger,
  expected: number,
  hooks: { onFlush?: (written: Written) => void; onDone?: (count: number) => void } = {},
): Promise<void> {
  const source = new RedisSource(
    { host: '127.0.0.1', port, db: 0, password: null, tls: false },
    pipeline,
    log,
    Date.now,
  );
  await source.start();
  process.stdout.write('ready\n');
  let target = expected;
  const tick = () => {
    // received counts a batch once it went through the pipeline (parsed, in the model).
    const count = source.received;
    const done = count >= target;
    // Flushed whether or not a hook looks (`hook?.(flush())` would skip the flush without one).
    const written = pipeline.flush(done);
    hooks.onFlush?.(written);
    if (done) {
      process.stdout.write(`done ${count}\n`);
      hooks.onDone?.(count);
      target += expected;
    }
  };
  setInterval(() => {
    if (source.received >= target) tick();
  }, 2);
  setInterval(tick, 50);
}
