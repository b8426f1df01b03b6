import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { runUclient, spawnUclient, startPeer, type Service } from '../test/harness/services.js';
import { isAlive } from '../src/process/pids.js';
import { waitUntil } from '../src/process/wait.js';
import { sleep, type Benchmark } from './lib.js';

const KEY = 'bench-api-key-0123456789';
const USER = { user: 'bench', password: 'bench-password' };
/** How often a new allocation is tried while waiting for the first refusal. */
const TRY_EVERY_MS = 200;
let peer: Service;

/**
 * From t0 on, a fresh uclient allocation attempt every TRY_EVERY_MS (each from its own source
 * address, over TCP so an accepted one ends when its uclient does) until coturn refuses one
 * (486 Allocation Quota Reached on 4.6.1); returns when the first refused attempt began.
 */
async function firstRefusal(h: Harness, m: MonitorProcess, t0: number): Promise<number> {
  const attempts: Promise<void>[] = [];
  let refusedAt = Infinity;
  for (let i = 0; !Number.isFinite(refusedAt); i++) {
    if (performance.now() - t0 > 20_000) throw new Error('no new allocation refused within 20 s of the drain');
    const startedAt = performance.now();
    const attempt = runUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      tcp: true,
      messages: 1,
      length: 20,
      extraArgs: ['-L', `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`],
      timeoutMs: 15_000,
    });
    attempts.push(
      attempt.then((r) => {
        if (r.code !== 0 && /\b486\b/.test(r.output)) refusedAt = Math.min(refusedAt, startedAt);
        else if (r.code !== 0) throw new Error(`allocation attempt failed, not refused: ${r.output.slice(-300)}`);
      }),
    );
    await Promise.race([sleep(TRY_EVERY_MS), attempts[attempts.length - 1]]);
  }
  await Promise.all(attempts);
  return refusedAt - t0;
}

/**
 * POST /drain {then: 'stop'} on a monitor with one live relay (over TCP, so its allocations end
 * with its uclient): drain start → the first new allocation refused, and the relay's end (its
 * uclient killed once refusing is measured) → the monitor's exit. A drain ends the monitor: a
 * fresh one each round.
 */
export const drain: Benchmark = {
  name: 'drain',
  goals: { refuse_ms: '≤ 6000 (4.6.1: cc total-quota)', exit_ms: '≤ 1000' },
  async setup(h) {
    peer = await startPeer(h);
  },
  async round(h, round) {
    const m = await startMonitor(
      h,
      {
        dataDir: path.join(h.dir, `data-${round}`),
        logLevel: 'info',
        http: { apiKeys: [KEY] },
        turnserver: { extraConfig: [`user=${USER.user}:${USER.password}`] },
      },
      { configFile: path.join(h.dir, `config-${round}.json`) },
    );
    await waitUntil('admin channel', async () => (await m.health()).body.turnserver.admin === 'connected', 10_000);
    const turnPid = (await m.health()).body.turnserver.pid as number;
    const relay = spawnUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      tcp: true,
      messages: 20_000,
      length: 100,
      extraArgs: ['-z', '5'],
    });
    // Over TCP uclient makes no probe allocation: the relaying one is the only allocation.
    await waitUntil('relay open', async () => (await m.health()).body.stats.openAllocations === 1, 10_000);

    const t0 = performance.now();
    const r = await fetch(`${m.httpUrl}/drain`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ timeoutSec: 120, then: 'stop' }),
    });
    if (r.status !== 202) throw new Error(`POST /drain: HTTP ${r.status}`);
    const refuseMs = await firstRefusal(h, m, t0);

    const ended = performance.now();
    relay.child.kill('SIGKILL');
    const exit = await m.exited;
    const exitMs = performance.now() - ended;
    if (exit.code !== 0) throw new Error(`monitor exited ${exit.code} after the drain`);
    if (isAlive(turnPid)) throw new Error('turnserver still running after the drain');
    return { refuse_ms: refuseMs, exit_ms: exitMs };
  },
};
