import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { runUclient, startPeer, type Service } from '../test/harness/services.js';
import type { Benchmark } from './lib.js';
import { freePortRange } from '../src/process/ports.js';
import { sleep } from './lib.js';
import { fixedSchedule } from './uclient-schedule.js';

const USER = { user: 'bench', password: 'bench-password' };
let peer: Service;
let uclientSchedule: NodeJS.ProcessEnv;
let monitor: MonitorProcess;

async function load(h: Harness, during?: () => Promise<void>) {
  const t0 = performance.now();
  const run = runUclient(h, {
    env: uclientSchedule,
    turnPort: monitor.turnPort,
    peerPort: peer.port,
    ...USER,
    clients: 10,
    messages: 800,
    length: 1000,
    extraArgs: ['-z', '2'],
  });
  await during?.();
  const r = await run;
  if (r.code !== 0 || r.sentBytes === null) throw new Error(`uclient failed: ${r.output.slice(-300)}`);
  return { bps: r.sentBytes / ((performance.now() - t0) / 1000), loss: r.lossPercent ?? 100 };
}

/** kill -9 of the monitor 0.5 s into the relay, and a new monitor on the same config (it adopts turnserver). */
async function killAndRestart(h: Harness): Promise<number> {
  await sleep(500);
  const config = monitor.config;
  const t0 = performance.now();
  process.kill(monitor.pid, 'SIGKILL');
  await monitor.exited;
  monitor = await startMonitor(h, {}, { rawConfig: config, configFile: monitor.configFile });
  return performance.now() - t0;
}

/** The same relay with a monitor kill -9 + restart in the middle, and without, in the same run. */
export const monitorRestart: Benchmark = {
  name: 'monitor_restart',
  goals: {
    loss_kill: '= loss_plain',
    loss_plain: '-',
    ratio: '≈ 1 (bytes/s with the kill vs without)',
    restart_ms: '-',
  },
  warmup: 1,
  rounds: 5,
  async setup(h) {
    uclientSchedule = await fixedSchedule(h);
    peer = await startPeer(h);
    // uclient leaves its probe allocation to expire: every load holds relay ports for its lifetime.
    const [minPort, maxPort] = await freePortRange(2000);
    monitor = await startMonitor(h, {
      dataDir: path.join(h.dir, 'data'),
      logLevel: 'info',
      turnserver: { minPort, maxPort, extraConfig: [`user=${USER.user}:${USER.password}`] },
    });
  },
  async round(h, round) {
    let restartMs = 0;
    const withKill = () => load(h, async () => void (restartMs = await killAndRestart(h)));
    const first = round % 2 ? await load(h) : await withKill();
    const second = round % 2 ? await withKill() : await load(h);
    const [kill, plain] = round % 2 ? [second, first] : [first, second];
    return { loss_kill: kill.loss, loss_plain: plain.loss, ratio: kill.bps / plain.bps, restart_ms: restartMs };
  },
};
