import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { sleep, type Benchmark } from './lib.js';

let monitor: MonitorProcess;

/** kill -9 of turnserver → STUN answers again: restartDelayMs (3 s) plus spawn and probe. */
export const recovery: Benchmark = {
  name: 'recovery',
  goals: { seconds: '≤ 3.5 (restartDelay + 0.5 s)' },
  rounds: 10,
  async setup(h) {
    monitor = await startMonitor(h, { logLevel: 'info' });
  },
  async round() {
    const pid = (await monitor.health()).body.turnserver.pid as number;
    const t0 = performance.now();
    process.kill(pid, 'SIGKILL');
    while ((await monitor.health()).body.turnserver.pid === pid) await sleep(20);
    while (!(await monitor.stunAnswers(100))) await sleep(10);
    return { seconds: (performance.now() - t0) / 1000 };
  },
};
