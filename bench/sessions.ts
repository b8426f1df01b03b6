import { cliCommand, coturnSessions } from '../test/harness/coturn-cli.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { runUclient, startPeer } from '../test/harness/services.js';
import { freePortRange } from '../src/process/ports.js';
import { percentile, sleep, type Benchmark } from './lib.js';

const KEY = 'bench-api-key-0123456789';
const USER = { user: 'bench', password: 'bench-password' };
const LIVE = 1000;
let monitor: MonitorProcess;

/** GET /sessions latency with 1,000 live allocations (coturn's `ps`, parsed, joined with the model). */
export const sessions: Benchmark = {
  name: 'sessions',
  goals: { p99_ms: '≤ 200', median_ms: '-', bare_ps_p99_ms: '-', bare_ps_median_ms: '-' },
  async setup(h) {
    const peer = await startPeer(h);
    // uclient reserves port pairs and holds 2 allocations per client at its peak.
    const [minPort, maxPort] = await freePortRange(4 * LIVE + 400);
    monitor = await startMonitor(h, {
      logLevel: 'info',
      http: { apiKeys: [KEY] },
      turnserver: { minPort, maxPort, extraConfig: [`user=${USER.user}:${USER.password}`] },
    });
    // Each uclient client leaves its probe allocation alive; parallel uclients need their own source address.
    const leave = (clients: number, address: string) =>
      runUclient(h, {
        turnPort: monitor.turnPort,
        peerPort: peer.port,
        ...USER,
        clients,
        messages: 1,
        length: 50,
        timeoutMs: 120_000,
        extraArgs: ['-L', address],
      });
    const procs = 10;
    await Promise.all(Array.from({ length: procs }, (_, i) => leave(LIVE / procs, `127.0.0.${i + 2}`)));
    const live = async () => {
      for (let i = 0; i < 50 && (await coturnSessions(monitor)).total < LIVE; i++) await sleep(100);
      return (await coturnSessions(monitor)).total;
    };
    // A client whose probe allocation failed under the burst leaves none: top up what is missing.
    for (let attempt = 0, total = await live(); total < LIVE; attempt++, total = await live()) {
      if (attempt === 3) throw new Error(`only ${total} live allocations`);
      console.log(`sessions: ${total} live allocations after the burst, adding ${LIVE - total}`);
      await leave(LIVE - total, `127.0.1.${attempt + 2}`);
    }
  },
  async round() {
    const times: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < 30; i++) {
      const t0 = performance.now();
      const r = await fetch(`${monitor.httpUrl}/sessions`, { headers: { authorization: `Bearer ${KEY}` } });
      const body = (await r.json()) as unknown[];
      times.push(performance.now() - t0);
      // 98 %: now and then a few of the allocations uclient left behind are gone by a round (seen: 991).
      if (r.status !== 200 || body.length < LIVE * 0.98)
        throw new Error(`GET /sessions: HTTP ${r.status}, ${body.length} sessions`);
      // Baseline: coturn's own `ps` on a connection of the benchmark's (login included, a few ms).
      const t1 = performance.now();
      await cliCommand(monitor, 'ps', 10_000);
      bare.push(performance.now() - t1);
    }
    return {
      p99_ms: percentile(times, 99),
      median_ms: percentile(times, 50),
      bare_ps_p99_ms: percentile(bare, 99),
      bare_ps_median_ms: percentile(bare, 50),
    };
  },
};
