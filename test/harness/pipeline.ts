import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { UsagePipeline } from '../../src/stats/pipeline.js';

/**
 * The monitor's usage pipeline on its own (source `redis`, the monitor's default checkpoint and
 * grace, a registry of its own), its SQLite store opened and a run set: what a test or a
 * benchmark worker feeds events into without a monitor around it.
 */
export function openPipeline(dbFile: string, log: Logger, run: string): UsagePipeline {
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
  pipeline.setRun(run);
  return pipeline;
}
