// Benchmark worker: turn-monitor's ingest path (RedisSource → AllocationModel → UsageStore) on
// its own, reporting `ready`, then `done N` once N events are ingested AND committed to SQLite.
// With --commits it also prints `c <allocationId> <ms>` the first time an allocation is committed.
import { pino } from 'pino';
import type { UsageEvent } from '../../src/stats/events.js';
import { AllocationModel } from '../../src/stats/model.js';
import { RedisSource } from '../../src/stats/redis-source.js';
import { UsageStore } from '../../src/stats/store.js';

const [port, dbFile, expected, commits] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4]), process.argv[5] === '--commits'];
const model = new AllocationModel({ deleteGraceMs: 2000 });
const store = new UsageStore(dbFile);
let count = 0;
const seen = new Set<string>();
const source = new RedisSource(
  { host: '127.0.0.1', port, db: 0, password: null, tls: false },
  { ingest: (e: UsageEvent) => { model.ingest(e, 'bench'); count++; } },
  pino({ level: 'silent' }),
  Date.now,
);
await source.start();
process.stdout.write('ready\n');
// The same flush policy as the monitor: new and closed records every 50 ms, checkpoints every 1 s.
let lastCheckpoint = 0;
setInterval(() => {
  const now = Date.now();
  const checkpoint = now - lastCheckpoint >= 1000 || count >= expected;
  if (checkpoint) lastCheckpoint = now;
  model.tick(now);
  const dirty = model.drainDirty(checkpoint);
  store.write(dirty);
  if (commits) {
    const now = Date.now();
    let out = '';
    for (const r of dirty) if (!seen.has(r.allocationId)) { seen.add(r.allocationId); out += `c ${r.allocationId} ${now}\n`; }
    if (out) process.stdout.write(out);
  }
  if (count >= expected) {
    process.stdout.write(`done ${count}\n`);
    process.exit(0);
  }
}, 50);
