// Benchmark worker: the monitor's ingest path (RedisSource → UsagePipeline → SQLite), as
// ingest-ours.ts runs it, with the webhooks subsystem on (its triggers in usage.db, its delivery
// thread sending to the receiver at URL) or off ('off'). Prints `ready`, then `done N` each time
// N, a multiple of the expected count, events are ingested and committed.
// `--prefill N`: before starting webhooks, store N closed allocations (2N events waiting in the
// outbox), then print `sending` as the delivery thread starts: the receiver times the backlog.
import path from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildConfig } from '../../src/config/load.js';
import { newRecord } from '../../src/stats/allocation-record.js';
import { WebhookOutbox } from '../../src/webhooks/outbox.js';
import { Webhooks } from '../../src/webhooks/webhooks.js';
import { benchPipeline, drainLoop } from './ingest-loop.js';

const [port, dbFile, expected, url, secret] = [
  Number(process.argv[2]),
  process.argv[3],
  Number(process.argv[4]),
  process.argv[5],
  process.argv[6],
];
const prefill = process.argv[7] === '--prefill' ? Number(process.argv[8]) : 0;
const log = pino({ level: 'silent' });
const pipeline = benchPipeline(dbFile, log);

if (url !== 'off') {
  const config = buildConfig(
    {
      dataDir: path.dirname(dbFile),
      stats: { dbFile: path.basename(dbFile) },
      webhooks: { endpoints: [{ url, secret }] },
    },
    path.dirname(dbFile),
  );
  if (prefill > 0) {
    new WebhookOutbox(dbFile, 'bench', [{ name: url, events: ['*'] }]).close();
    const records = [];
    for (let i = 0; i < prefill; i++) {
      const at = Date.now();
      const r = newRecord(
        {
          kind: 'status',
          status: 'new',
          source: 'redis',
          realm: 'bench.org',
          username: `1795000000:client${i % 1000}`,
          allocationId: String(i + 1).padStart(18, '0'),
          transport: 'UDP',
          local: null,
          remote: null,
          lifetime: 600,
          at,
        } as Parameters<typeof newRecord>[0],
        'prefill',
        'redis',
      );
      records.push(Object.assign(r, { endedAt: at + 1000, endReason: 'deleted' }));
      if (records.length === 500) pipeline.store!.write(records.splice(0));
    }
    pipeline.store!.write(records);
    process.stdout.write('sending\n');
  }
  const webhooks = new Webhooks({ config, logger: log, registry: new Registry(), hostId: 'bench' });
  await webhooks.start();
}

await drainLoop(port, pipeline, log, expected);
