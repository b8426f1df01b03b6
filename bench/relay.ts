import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { runUclient, startPeer, startRedis, type Service } from '../test/harness/services.js';
import { stunProbe } from '../src/supervisor/stun-probe.js';
import type { Benchmark } from './lib.js';
import { freePort, freePortRange } from '../src/process/ports.js';
import { waitUntil } from '../src/process/wait.js';

const USER = { user: 'bench', password: 'bench-password' };
type Setup = { monitor: MonitorProcess; barePort: number };
const setups: Record<'redis' | 'log', Setup> = {} as never;
let peer: Service;

/** A bare turnserver from the monitor's rendered conf: other ports, its own Redis, output discarded. */
async function bareTurnserver(h: Harness, m: MonitorProcess, name: string): Promise<number> {
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
  h.spawn(name, 'bash', ['-c', `exec turnserver -c ${file} --log-file=stdout --simple-log > /dev/null 2>&1`]);
  await waitUntil(`${name} serving`, () => stunProbe('127.0.0.1', port, 200), 10_000);
  return port;
}

async function load(h: Harness, turnPort: number) {
  const t0 = performance.now();
  const r = await runUclient(h, { turnPort, peerPort: peer.port, ...USER, clients: 10, messages: 800, length: 1000, extraArgs: ['-z', '2'] });
  if (r.code !== 0 || r.sentBytes === null) throw new Error(`uclient failed: ${r.output.slice(-300)}`);
  const bps = r.sentBytes / ((performance.now() - t0) / 1000);
  if (process.env.BENCH_DEBUG) console.log('relay load', r.sentBytes, bps, r.lossPercent);
  return { bps, loss: r.lossPercent ?? 100 };
}

/** The same uclient load through our monitor's turnserver and through a bare one, for both sources. */
export const relay: Benchmark = {
  name: 'relay',
  goals: { ratio: '≥ 0.98', ratio_log: '≥ 0.98', loss_ours: '= loss_bare', loss_bare: '-', loss_ours_log: '= loss_bare', loss_bare_log: '-' },
  async setup(h) {
    peer = await startPeer(h);
    for (const source of ['redis', 'log'] as const) {
      const monitor = await startMonitor(h, { dataDir: path.join(h.dir, source), logLevel: 'info', stats: { source }, turnserver: { extraConfig: [`user=${USER.user}:${USER.password}`] } }, { configFile: path.join(h.dir, `${source}.json`) });
      setups[source] = { monitor, barePort: await bareTurnserver(h, monitor, `bare-${source}`) };
    }
  },
  async round(h, round) {
    const figures: Record<string, number> = {};
    for (const source of ['redis', 'log'] as const) {
      const { monitor, barePort } = setups[source];
      const ours = round % 2 ? null : await load(h, monitor.turnPort);
      const bare = await load(h, barePort);
      const o = ours ?? (await load(h, monitor.turnPort));
      const suffix = source === 'log' ? '_log' : '';
      figures[`ratio${suffix}`] = o.bps / bare.bps;
      figures[`loss_ours${suffix}`] = o.loss;
      figures[`loss_bare${suffix}`] = bare.loss;
    }
    return figures;
  },
};
