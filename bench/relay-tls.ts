import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';
import { linkPair, makePair } from '../test/harness/certs.js';
import { startMonitor } from '../test/harness/monitor.js';
import { runUclient, startPeer, startRedis, type Service } from '../test/harness/services.js';
import { freePort, freePortRange } from '../src/process/ports.js';
import { waitUntil } from '../src/process/wait.js';
import { tlsStunProbe } from '../src/tls/tls-probe.js';
import { quiesce, type Benchmark } from './lib.js';
import { fixedSchedule } from './uclient-schedule.js';

const USER = { user: 'bench', password: 'bench-password' };
let peer: Service;
let oursPort = 0;
let barePort = 0;
let uclientSchedule: NodeJS.ProcessEnv;

/** A bare turnserver from the monitor's rendered conf: other ports, its own Redis, output discarded. */
async function bareTurnserver(h: Harness, dataDir: string): Promise<number> {
  const [port, tls] = [await freePort(), await freePort()];
  const [min, max] = await freePortRange(200);
  const redis = await startRedis(h);
  const conf = readFileSync(path.join(dataDir, 'turnserver.conf'), 'utf8')
    .replace(/^listening-port=.*$/m, `listening-port=${port}`)
    .replace(/^tls-listening-port=.*$/m, `tls-listening-port=${tls}`)
    .replace(/^min-port=.*$/m, `min-port=${min}`)
    .replace(/^max-port=.*$/m, `max-port=${max}`)
    .replace(/^pidfile=.*$/m, `pidfile=${path.join(h.dir, 'bare-tls.pid')}`)
    .replace(/port=\d+ dbname/, `port=${redis.port} dbname`);
  const file = path.join(h.dir, 'bare-tls.conf');
  writeFileSync(file, conf);
  h.spawn('bare-tls', 'bash', ['-c', `exec turnserver -c ${file} --log-file=stdout --simple-log > /dev/null 2>&1`]);
  await waitUntil('bare turnserver serving TLS', async () => (await tlsStunProbe('127.0.0.1', tls, 200)).ok, 10_000);
  return tls;
}

async function load(h: Harness, turnPort: number) {
  await quiesce();
  const t0 = performance.now();
  const r = await runUclient(h, {
    env: uclientSchedule,
    turnPort,
    peerPort: peer.port,
    ...USER,
    tls: true,
    clients: 10,
    messages: 800,
    length: 1000,
    extraArgs: ['-z', '2'],
  });
  if (r.code !== 0 || r.sentBytes === null) throw new Error(`uclient failed: ${r.output.slice(-300)}`);
  return { bps: r.sentBytes / ((performance.now() - t0) / 1000), loss: r.lossPercent ?? 100 };
}

/**
 * The same uclient load over TLS (turns:) through our monitor's turnserver and a bare one: one
 * fixed uclient schedule for every load, as in `relay`, and the harness quiet before each.
 */
export const relayTls: Benchmark = {
  name: 'relay_tls',
  goals: { ratio: '≥ 0.98', loss_ours: '= loss_bare', loss_bare: '-' },
  warmup: 1,
  rounds: 5,
  async setup(h) {
    uclientSchedule = await fixedSchedule(h);
    peer = await startPeer(h);
    const pair = linkPair(path.join(h.dir, 'live'), makePair(path.join(h.dir, 'archive'), 'bench'));
    oursPort = await freePort();
    const dataDir = path.join(h.dir, 'data');
    await startMonitor(h, {
      dataDir,
      logLevel: 'info',
      turnserver: {
        probeIntervalMs: Number(process.env.BENCH_PROBE_MS ?? 5000),
        tls: { ...pair, port: oursPort },
        extraConfig: [`user=${USER.user}:${USER.password}`],
      },
    });
    barePort = await bareTurnserver(h, dataDir);
  },
  async round(h, round) {
    const ours = round % 2 ? null : await load(h, oursPort);
    const bare = await load(h, barePort);
    const o = ours ?? (await load(h, oursPort));
    return { ratio: o.bps / bare.bps, loss_ours: o.loss, loss_bare: bare.loss };
  },
};
