import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { allocationEvents } from './events.js';
import { median, sleep, type Benchmark, type Figures } from './lib.js';
import { waitUntil } from '../src/process/wait.js';

const OPEN = 10_000;
/** Rounds in one monitor: before the fixes of issue 27, RSS climbed for about five before it levelled off. */
const ROUNDS = 12;
/** The steady state: the median (and range) of the last rounds, well past that climb. */
const STEADY_ROUNDS = 6;
const KEY = 'bench-api-key-0123456789';
let monitor: MonitorProcess;
let pub: Redis;
const opens: number[] = [];
const settleds: number[] = [];
let firstIdle = NaN;
let endIdle = NaN;

/** One look at the monitor's memory, in MB. */
interface Memory {
  /** Resident set (VmRSS). */
  rss: number;
  /** Of it, pages of files (RssFile): node's binary, mostly, and the shared libraries. */
  file: number;
  /** Of it, anonymous memory (RssAnon): the main V8 heap, the Redis reader thread's heap, malloc. */
  anon: number;
  /** The main thread's V8 heap: its pages (heapTotal) and what objects take of them (heapUsed). */
  heapTotal: number;
  heapUsed: number;
}

const MB = 1024 * 1024;

function statusMb(pid: number, field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

async function lookAtMemory(): Promise<Memory> {
  // The heap from the monitor's default metrics (prom-client reads process.memoryUsage()).
  const text = (await monitor.get('/metrics')).text;
  const metric = (name: string) => Number(new RegExp(`^turn_monitor_${name} (\\S+)$`, 'm').exec(text)![1]) / MB;
  const pid = monitor.pid;
  return {
    rss: statusMb(pid, 'VmRSS'),
    file: statusMb(pid, 'RssFile'),
    anon: statusMb(pid, 'RssAnon'),
    heapTotal: metric('nodejs_heap_size_total_bytes'),
    heapUsed: metric('nodejs_heap_size_used_bytes'),
  };
}

async function openCount(): Promise<number> {
  return (await monitor.health()).body.stats.openAllocations as number;
}

const r1 = (n: number) => Math.round(n * 10) / 10;
const parts = (m: Memory) =>
  `${r1(m.rss)} (file ${r1(m.file)}, heap ${r1(m.heapTotal)} [used ${r1(m.heapUsed)}], ` +
  `other anon ${r1(m.anon - m.heapTotal)})`;

/**
 * RSS of one monitor holding 10,000 open allocations and after they all closed, round after
 * round (fresh ids each round), with what it is made of: file pages (node's binary), the main
 * V8 heap, the rest of the anonymous memory (the Redis reader thread's heap, malloc: SQLite's
 * page cache, buffers, V8's own bookkeeping). `open` is 0.5 s after the 40,000 events that opened
 * them, `settled` 3 s after, once the monitor has given the burst's garbage back.
 */
export const memory: Benchmark = {
  name: 'memory',
  goals: {
    rss_mb_open_steady: '≤ 120',
    rss_mb_settled_steady: '≤ 120',
    idle_drift_mb: '≤ 10',
  },
  rounds: ROUNDS,
  async setup(h) {
    // Redis explicitly: the benchmark publishes its events there ('auto' is 'log' on 4.6.1).
    monitor = await startMonitor(h, { logLevel: 'info', stats: { source: 'redis' }, http: { apiKeys: [KEY] } });
    pub = new Redis({ port: (await monitor.health()).body.stats.redis.port, host: '127.0.0.1' });
    h.onCleanup(async () => void pub.disconnect());
  },
  async round(_h, round) {
    await sleep(500);
    const idle = await lookAtMemory();
    if (round === 0) firstIdle = idle.rss;
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
    const open = await lookAtMemory();
    await sleep(2500);
    const settled = await lookAtMemory();
    await send([97, 98, 99]); // deleted, totals
    await waitUntil('all closed', async () => (await openCount()) === 0, 60_000);
    await sleep(1500);
    const after = await lookAtMemory();
    if (round === ROUNDS - 1) {
      await sleep(500); // where a next round would take its idle figure
      endIdle = (await lookAtMemory()).rss;
    }
    opens.push(open.rss);
    settleds.push(settled.rss);
    console.log(
      `memory round ${round + 1}: idle ${parts(idle)}; open ${parts(open)}; settled ${parts(settled)}; ` +
        `after ${r1(after.rss)} MB`,
    );
    return {
      rss_mb_idle: idle.rss,
      rss_mb_open: open.rss,
      rss_mb_settled: settled.rss,
      rss_mb_after: after.rss,
      file_mb_open: open.file,
      heap_mb_open: open.heapTotal,
      heap_used_mb_open: open.heapUsed,
      other_anon_mb_open: open.anon - open.heapTotal,
      heap_mb_settled: settled.heapTotal,
      other_anon_mb_settled: settled.anon - settled.heapTotal,
    };
  },
  finish(): Figures {
    const steady = (values: number[], name: string): Figures => {
      const last = values.slice(-STEADY_ROUNDS);
      return {
        [`${name}_steady`]: median(last),
        [`${name}_steady_min`]: Math.min(...last),
        [`${name}_steady_max`]: Math.max(...last),
      };
    };
    return {
      ...steady(opens, 'rss_mb_open'),
      ...steady(settleds, 'rss_mb_settled'),
      rss_mb_idle_first: firstIdle,
      rss_mb_idle_end: endIdle,
      idle_drift_mb: endIdle - firstIdle,
    };
  },
};
