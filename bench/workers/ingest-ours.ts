// Benchmark worker: turn-monitor's ingest path (RedisSource → UsagePipeline: model, metrics,
// SQLite store with the monitor's flush policy) on its own, reporting `ready`, then `done N`
// each time N, a multiple of the expected count, events are ingested AND committed to SQLite
// (one line per drained backlog).
// With --commits it also prints `c <allocationId> <ms>` the first time an allocation is committed,
// and exits after the first `done`.
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { UsagePipeline } from '../../src/stats/pipeline.js';
import { RedisSource } from '../../src/stats/sources/redis/redis-source.js';

const [port, dbFile, expected, commits] = [
  Number(process.argv[2]),
  process.argv[3],
  Number(process.argv[4]),
  process.argv[5] === '--commits',
];
const log = pino({ level: 'silent' });
const pipeline = new UsagePipeline({
  dbFile,
  source: 'redis',
  checkpointMs: 1000,
  deleteGraceMs: 2000,
  registry: new Registry(),
  log,
  now: Date.now,
});
pipeline.open();
pipeline.setRun('bench');
const seen = new Set<string>();
const source = new RedisSource({ host: '127.0.0.1', port, db: 0, password: null, tls: false }, pipeline, log, Date.now);
await source.start();
process.stdout.write('ready\n');
// Flushes every 50 ms: the cadence of the monitor's own flush timer while events keep coming
// (UsagePipeline.scheduleFlushes; open records checkpointed every checkpointMs).
let target = expected;
// The backlog's end is looked for every few ms, not only on the 50 ms flush: a drain then ends
// when its last event is committed, not up to a flush interval later.
setInterval(() => {
  if (source.received >= target) tick();
}, 2);
setInterval(tick, 50);
function tick(): void {
  // received counts a batch once it went through the pipeline (parsed, in the model).
  const count = source.received;
  const done = count >= target;
  const written = pipeline.flush(done);
  if (commits) {
    const now = Date.now();
    let out = '';
    for (const r of written)
      if (!seen.has(r.allocationId)) {
        seen.add(r.allocationId);
        out += `c ${r.allocationId} ${now}\n`;
      }
    if (out) process.stdout.write(out);
  }
  if (done) {
    process.stdout.write(`done ${count}\n`);
    if (commits) process.exit(0);
    target += expected;
  }
}
