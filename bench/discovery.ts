import zookeeper from 'node-zookeeper-client';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { startZookeeper } from '../test/harness/services.js';
import type { Benchmark } from './lib.js';

let monitor: MonitorProcess;
let client: zookeeper.Client;
const PATH = '/turn/servers';

/** Resolves with the time the watcher saw a child appear under PATH. */
function nextAppearance(): Promise<number> {
  return new Promise((resolve) => {
    const look = () =>
      client.getChildren(
        PATH,
        () => look(),
        (err, children) => {
          if (!err && children.length > 0) resolve(performance.timeOrigin + performance.now());
        },
      );
    look();
  });
}

/** turnserver ready (the monitor's log) → the ephemeral node visible to another ZooKeeper client. */
export const discovery: Benchmark = {
  name: 'discovery',
  goals: { ms: '≤ 1000' },
  async setup(h) {
    const zk = await startZookeeper(h);
    client = zookeeper.createClient(zk.connect, { sessionTimeout: 5000 });
    await new Promise<void>((resolve) => {
      client.once('connected', () => resolve());
      client.connect();
    });
    h.onCleanup(async () => client.close());
    monitor = await startMonitor(h, {
      logLevel: 'info',
      turnserver: { restartDelayMs: 200 },
      zookeeper: { connect: zk.connect, path: PATH, sessionTimeoutMs: 4000 },
    });
    // Stopped before the harness kills ZooKeeper, or its shutdown waits for it past the SIGTERM grace.
    h.onCleanup(async () => void (await monitor.stop()));
    await new Promise<void>((resolve) => client.mkdirp(PATH, () => resolve()));
  },
  async round() {
    const pid = (await monitor.health()).body.turnserver.pid as number;
    const from = monitor.logs.length;
    // Node gone with the child, back when the next child serves.
    await new Promise<void>((resolve) => {
      const gone = () =>
        client.getChildren(
          PATH,
          () => gone(),
          (err, c) => (!err && c.length === 0 ? resolve() : undefined),
        );
      process.kill(pid, 'SIGKILL');
      gone();
    });
    const seen = nextAppearance();
    const ready = await monitor.waitForLog((e) => e.event === 'ready' && e.component === 'supervisor', { from });
    return { ms: (await seen) - Date.parse(ready.time as string) };
  },
};
