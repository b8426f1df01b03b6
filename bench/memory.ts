import { Redis } from 'ioredis';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { allocationEvents } from './events.js';
import { rssMb, sleep, type Benchmark } from './lib.js';
import { waitUntil } from '../src/process/wait.js';

const OPEN = 10_000;
let monitor: MonitorProcess;
let pub: Redis;
const KEY = 'bench-api-key-0123456789';

async function openCount(): Promise<number> {
  return (await monitor.health()).body.stats.openAllocations as number;
}

/** RSS of the monitor holding 10,000 open allocations, and after they all closed. */
export const memory: Benchmark = {
  name: 'memory',
  goals: { rss_mb_idle: '-', rss_mb_open: '≤ 150', rss_mb_after: 'near idle' },
  async setup(h) {
    // Redis explicitly: the benchmark publishes its events there ('auto' is 'log' on 4.6.1).
    monitor = await startMonitor(h, { logLevel: 'info', stats: { source: 'redis' }, http: { apiKeys: [KEY] } });
    pub = new Redis({ port: (await monitor.health()).body.stats.redis.port, host: '127.0.0.1' });
    h.onCleanup(async () => void pub.disconnect());
  },
  async round(_h, round) {
    await sleep(500);
    const idle = rssMb(monitor.pid);
    const base = round * OPEN; // fresh ids every round
    const send = async (steps: number[]) => {
      for (const step of steps) {
        const p = pub.pipeline();
        for (let i = 0; i < OPEN; i++) p.publish(...allocationEvents(base + i)[step]);
        await p.exec();
      }
    };
    await send([0, 1, 3, 4]); // new, refreshed, one traffic pair: 10,000 open allocations
    await waitUntil('all open', async () => (await openCount()) >= OPEN, 60_000);
    await sleep(500);
    const open = rssMb(monitor.pid);
    await send([97, 98, 99]); // deleted, totals
    await waitUntil('all closed', async () => (await openCount()) === 0, 60_000);
    (globalThis as { gc?: () => void }).gc?.();
    await sleep(1500);
    return { rss_mb_idle: idle, rss_mb_open: open, rss_mb_after: rssMb(monitor.pid) };
  },
};
