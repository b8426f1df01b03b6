// Benchmark worker: turn-monitor's ingest path (RedisSource → UsagePipeline: model, metrics,
// SQLite store with the monitor's flush policy) on its own, reporting `ready`, then `done N`
// each time N, a multiple of the expected count, events are ingested AND committed to SQLite
// (one line per drained backlog).
// With --commits it also prints `c <allocationId> <ms>` the first time an allocation is committed,
// and exits after the first `done`.
import { pino } from 'pino';
import { benchPipeline, drainLoop } from './ingest-loop.js';

const [port, dbFile, expected, commits] = [
  Number(process.argv[2]),
  process.argv[3],
  Number(process.argv[4]),
  process.argv[5] === '--commits',
];
const log = pino({ level: 'silent' });
const pipeline = benchPipeline(dbFile, log);
const seen = new Set<string>();
await drainLoop(port, pipeline, log, expected, {
  onFlush(written) {
    if (!commits) return;
    const now = Date.now();
    let out = '';
    for (const r of written)
      if (!seen.has(r.allocationId)) {
        seen.add(r.allocationId);
        out += `c ${r.allocationId} ${now}\n`;
      }
    if (out) process.stdout.write(out);
  },
  onDone() {
    if (commits) process.exit(0);
  },
});
