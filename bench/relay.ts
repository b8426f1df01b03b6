import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { runUclient, startPeer, startRedis, type Service } from '../test/harness/services.js';
import { stunProbe } from '../src/supervisor/stun-probe.js';
import { CpuWindow } from './cpu.js';
import { quiesce, type Benchmark } from './lib.js';
import { fixedSchedule } from './uclient-schedule.js';
import { freePort, freePortRange } from '../src/process/ports.js';
import { waitUntil } from '../src/process/wait.js';

const USER = { user: 'bench', password: 'bench-password' };
type Setup = { monitor: MonitorProcess; turnPid: number; barePort: number; barePid: number };
const setups: Record<'redis' | 'log', Setup> = {} as never;
let peer: Service;
let uclientSchedule: NodeJS.ProcessEnv;

/** A bare turnserver from the monitor's rendered conf: other ports, its own Redis, output discarded. */
async function bareTurnserver(
  h: Harness,
  m: MonitorProcess,
  name: string,
): Promise<{ barePort: number; barePid: number }> {
  const port = await freePort();
  const [min, max] = await freePortRange(200);
  const redis = await startRedis(h);
  const conf = readFileSync(path.join(m.dataDir, 'turnserver.conf'), 'utf8')
    .replace(/^listening-port=.*$/m, `listening-port=${port}`)
    .replace(/^min-port=.*$/m, `min-port=${min}`)
    .replace(/^max-port=.*$/m, `max-port=${max}`)
    .replace(/^pidfile=.*$/m, `pidfile=${path.join(h.dir, `${name}.pid`)}`)
    .replace(/port=\d+ dbname/, `port=${redis.port} dbname`);
  const file = path.join(h.dir, `${name}.conf`);
  writeFileSync(file, conf);
  // exec: the pid is turnserver's own, for its CPU time.
  const t = h.spawn(name, 'bash', ['-c', `exec turnserver -c ${file} --log-file=stdout --simple-log > /dev/null 2>&1`]);
  await waitUntil(`${name} serving`, () => stunProbe('127.0.0.1', port, 200), 10_000);
  return { barePort: port, barePid: t.pid };
}

const MESSAGES = 2500; // per client, paced every 2 ms (-z 2): about 5 s of traffic per load

async function load(h: Harness, turnPort: number, pids: number[]) {
  await quiesce();
  const cpu = new CpuWindow(pids);
  const harness0 = process.cpuUsage();
  const t0 = performance.now();
  const r = await runUclient(h, {
    env: uclientSchedule,
    turnPort,
    peerPort: peer.port,
    ...USER,
    clients: 10,
    messages: MESSAGES,
    length: 1000,
    extraArgs: ['-z', '2'],
  });
  const { cpuSec } = cpu.stop();
  const h1 = process.cpuUsage(harness0);
  const harnessSec = (h1.user + h1.system) / 1e6;
  if (r.code !== 0 || r.sentBytes === null) throw new Error(`uclient failed: ${r.output.slice(-300)}`);
  const bps = r.sentBytes / ((performance.now() - t0) / 1000);
  if (process.env.BENCH_DEBUG) console.log('relay load', r.sentBytes, bps, r.lossPercent, cpuSec);
  return { bps, loss: r.lossPercent ?? 100, bytes: r.sentBytes, cpuSec, harnessSec };
}

/** CPU seconds summed over every measured round, per source, for the figures per relayed GB. */
const zero = () => ({ bytes: 0, monitor: 0, turnserver: 0, bareBytes: 0, bare: 0, harness: 0 });
const totals = { redis: zero(), log: zero() };
const WARMUP = 1;

/**
 * The same uclient load through our monitor's turnserver and through a bare one, for both
 * sources. One round = one adjacent pair per source, the order swapped every round (ABBA); the
 * ratio is per pair. CPU (/proc/<pid>/stat) of the monitor and of both turnservers is summed over
 * the same loads: the monitor's CPU per relayed GB against its turnserver's own.
 */
export const relay: Benchmark = {
  name: 'relay',
  goals: {
    ratio: '≥ 0.98',
    ratio_log: '≥ 0.98',
    loss_ours: '= loss_bare',
    loss_bare: '-',
    loss_ours_log: '= loss_bare',
    loss_bare_log: '-',
    monitor_cpu_pct: '≤ 5 (of turnserver)',
    monitor_cpu_pct_log: '≤ 5 (of turnserver)',
    monitor_cpu_s_per_gb: '-',
    turnserver_cpu_s_per_gb: '-',
    bare_cpu_s_per_gb: '-',
    monitor_cpu_s_per_gb_log: '-',
    turnserver_cpu_s_per_gb_log: '-',
    bare_cpu_s_per_gb_log: '-',
    harness_cpu_s_per_gb: '-',
    harness_cpu_s_per_gb_log: '-',
  },
  warmup: WARMUP,
  rounds: 5,
  async setup(h) {
    uclientSchedule = await fixedSchedule(h);
    peer = await startPeer(h);
    for (const source of ['redis', 'log'] as const) {
      const monitor = await startMonitor(
        h,
        {
          dataDir: path.join(h.dir, source),
          logLevel: 'info',
          stats: { source },
          // The production probe interval (the harness's shorter one is for quick tests).
          turnserver: { probeIntervalMs: 5000, extraConfig: [`user=${USER.user}:${USER.password}`] },
        },
        { configFile: path.join(h.dir, `${source}.json`) },
      );
      const turnPid = (await monitor.waitForEvent('ready')).childPid as number;
      const bare = await bareTurnserver(h, monitor, `bare-${source}`);
      setups[source] = { monitor, turnPid, ...bare };
    }
  },
  async round(h, round) {
    const figures: Record<string, number> = {};
    for (const source of ['redis', 'log'] as const) {
      const { monitor, turnPid, barePort, barePid } = setups[source];
      const ours = () => load(h, monitor.turnPort, [monitor.pid, turnPid]);
      const bareLoad = () => load(h, barePort, [barePid]);
      const [o, bare] = round % 2 ? [null, await bareLoad()] : [await ours(), null];
      const oursResult = o ?? (await ours());
      const bareResult = bare ?? (await bareLoad());
      const suffix = source === 'log' ? '_log' : '';
      figures[`ratio${suffix}`] = oursResult.bps / bareResult.bps;
      figures[`loss_ours${suffix}`] = oursResult.loss;
      figures[`loss_bare${suffix}`] = bareResult.loss;
      if (round >= WARMUP) {
        const t = totals[source];
        t.bytes += oursResult.bytes;
        t.monitor += oursResult.cpuSec[0];
        t.turnserver += oursResult.cpuSec[1];
        t.bareBytes += bareResult.bytes;
        t.bare += bareResult.cpuSec[0];
        t.harness += oursResult.harnessSec + bareResult.harnessSec;
      }
    }
    return figures;
  },
  finish() {
    const figures: Record<string, number> = {};
    for (const source of ['redis', 'log'] as const) {
      const t = totals[source];
      const suffix = source === 'log' ? '_log' : '';
      figures[`monitor_cpu_pct${suffix}`] = (100 * t.monitor) / t.turnserver;
      figures[`monitor_cpu_s_per_gb${suffix}`] = t.monitor / (t.bytes / 1e9);
      figures[`turnserver_cpu_s_per_gb${suffix}`] = t.turnserver / (t.bytes / 1e9);
      figures[`bare_cpu_s_per_gb${suffix}`] = t.bare / (t.bareBytes / 1e9);
      // This process (runner, uclient's output, the monitor's log) competes for the same cores.
      figures[`harness_cpu_s_per_gb${suffix}`] = t.harness / ((t.bytes + t.bareBytes) / 1e9);
    }
    return figures;
  },
};
