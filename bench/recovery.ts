import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { sleep, type Benchmark } from './lib.js';
import { isAlive } from '../src/process/pids.js';

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
    while (isAlive(pid)) await sleep(5);
    // A 60 ms probe resends every 20 ms: the answer is seen within ~20 ms of the first one given.
    while (!(await monitor.stunAnswers(60))) await sleep(2);
    const seconds = (performance.now() - t0) / 1000;
    await sleep(500); // let the new child settle before the next kill (not part of the figure)
    return { seconds };
  },
};
