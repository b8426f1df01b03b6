import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';
import { generateHistory } from '../test/harness/history.js';
import { startMonitor, testConfig, type MonitorProcess } from '../test/harness/monitor.js';
import { runUclient, startPeer, type Service } from '../test/harness/services.js';
import { median, quiesce, type Figures } from './lib.js';
import { fixedSchedule } from './uclient-schedule.js';

const DAY = 86_400_000;
const USER = { user: 'bench', password: 'bench-password' };
const EXPIRED = 1_000_000;
const PAIRS = 8;

/** A monitor keeping 7 days; `expired` closed allocations in its usage.db ended 30 to 60 days ago. */
async function monitorWith(h: Harness, name: string, expired: number): Promise<MonitorProcess> {
  const config = await testConfig(h, {
    logLevel: 'info',
    stats: { retentionDays: 7 },
    turnserver: { probeIntervalMs: 5000, extraConfig: [`user=${USER.user}:${USER.password}`] },
  });
  config.dataDir = path.join(h.dir, name, 'data');
  if (expired > 0) {
    const db = path.join(config.dataDir as string, 'usage.db');
    mkdirSync(path.dirname(db), { recursive: true });
    generateHistory(db, { rows: expired, clients: 50_000, endAt: Date.now() - 30 * DAY, spanMs: 30 * DAY });
  }
  return startMonitor(h, {}, { rawConfig: config, configFile: path.join(h.dir, name, 'config.json') });
}

/** The relay bench's load: 10 clients, 2,500 messages of 1,000 bytes each paced every 2 ms. */
async function load(h: Harness, m: MonitorProcess, peer: Service, env: NodeJS.ProcessEnv): Promise<number> {
  await quiesce();
  const t0 = performance.now();
  const r = await runUclient(h, {
    env,
    turnPort: m.turnPort,
    peerPort: peer.port,
    ...USER,
    clients: 10,
    messages: 2500,
    length: 1000,
    extraArgs: ['-z', '2'],
  });
  if (r.code !== 0 || r.sentBytes === null) throw new Error(`uclient failed: ${r.output.slice(-300)}`);
  return r.sentBytes / ((performance.now() - t0) / 1000);
}

const pruned = async (m: MonitorProcess) => (await m.health()).body.stats.history.prunedTotal as number;

/**
 * Retention deleting a million expired allocations while relays run: its rate (rows/s), and the
 * relay's throughput through that monitor against a monitor with nothing to prune, in adjacent
 * pairs (ABBA) while the pruning lasts.
 */
export async function pruneFigures(h: Harness): Promise<Figures> {
  const [env, peer] = [await fixedSchedule(h), await startPeer(h)];
  const control = await monitorWith(h, 'control', 0);
  const pruning = await monitorWith(h, 'pruning', EXPIRED);
  const ratios: number[] = [];
  const sample = async () => ({ at: performance.now(), n: await pruned(pruning) });
  let first: { at: number; n: number } | null = null;
  let last = await sample();
  for (let pair = 0; pair < PAIRS && last.n < EXPIRED; pair++) {
    if (first === null && last.n > 0) first = last;
    const order = pair % 2 ? [control, pruning] : [pruning, control];
    const bps = new Map<MonitorProcess, number>();
    for (const m of order) bps.set(m, await load(h, m, peer, env));
    ratios.push(bps.get(pruning)! / bps.get(control)!);
    last = await sample();
  }
  const rate = first && last.at > first.at ? (last.n - first.n) / ((last.at - first.at) / 1000) : NaN;
  return { prune_rows_per_s: rate, relay_ratio_pruning: median(ratios), prune_pairs: ratios.length };
}
