import type { MonitorProcess } from '../test/harness/monitor.js';
import { startMonitor } from '../test/harness/monitor.js';
import { startZookeeper } from '../test/harness/services.js';
import { CpuWindow } from './cpu.js';
import { sleep, type Benchmark } from './lib.js';

const FROM_SEC = 15;
const WINDOW_SEC = 30; // 15 s to 45 s after start
let monitor: MonitorProcess;
let turnPid: number;
let redisPid: number;
let startedAt: number;

/**
 * The monitor with nothing to do (no allocations; private Redis, ZooKeeper discovery, production
 * probe and publish intervals): its CPU as % of one core from 15 s to 45 s after start, beside
 * turnserver's and its private Redis's. One window (CPU time is counted in 10 ms ticks, so a short
 * window could not resolve 0.1 %): rounds would each need a fresh monitor.
 */
export const idle: Benchmark = {
  name: 'idle',
  goals: { monitor_pct: '≤ 0.2', turnserver_pct: '-', redis_pct: '-' },
  rounds: 1,
  async setup(h) {
    const zk = await startZookeeper(h);
    startedAt = performance.now();
    monitor = await startMonitor(h, {
      logLevel: 'info',
      // With its private Redis, as measured before 'auto' became the default ('log' on 4.6.1).
      stats: { source: 'redis' },
      turnserver: { probeIntervalMs: 5000 },
      zookeeper: { connect: zk.connect },
    });
    // Stopped before the harness kills ZooKeeper: a monitor whose ZooKeeper vanished mid-shutdown
    // waits for it (bounded) and would outlive the harness's SIGTERM grace.
    h.onCleanup(async () => void (await monitor.stop()));
    const ready = await monitor.waitForEvent('ready');
    turnPid = ready.childPid as number;
    redisPid = (await monitor.waitForEvent('spawn', { component: 'redis-supervisor' })).childPid as number;
  },
  async round() {
    const due = startedAt + FROM_SEC * 1000 - performance.now();
    if (due > 0) await sleep(due);
    const pids = [monitor.pid, turnPid, redisPid];
    const w = new CpuWindow(pids);
    await sleep(WINDOW_SEC * 1000);
    const { wallSec, cpuSec } = w.stop();
    const pct = (i: number) => (100 * cpuSec[i]) / wallSec;
    return { monitor_pct: pct(0), turnserver_pct: pct(1), redis_pct: pct(2) };
  },
};
