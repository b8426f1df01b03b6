import { coturnSessions } from '../test/harness/coturn-cli.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { runUclient, startPeer, type Service } from '../test/harness/services.js';
import { sleep, type Benchmark } from './lib.js';

const KEY = 'bench-api-key-0123456789';
const auth = { authorization: `Bearer ${KEY}` };
let monitor: MonitorProcess;
let peer: Service;

const held = async (clientId: string) =>
  [...(await coturnSessions(monitor)).ids.values()].filter((u) => u.endsWith(`:${clientId}`)).length;

/**
 * Revoke → the client's last allocation gone from coturn (as the benchmark's own `ps` sees it),
 * for a client holding 5 live allocations; 20 rounds, so the max is the p99.
 */
export const revoke: Benchmark = {
  name: 'revoke',
  goals: { ms: 'p99 (max of 20) ≤ 1000' },
  rounds: 20,
  async setup(h) {
    peer = await startPeer(h);
    monitor = await startMonitor(h, {
      logLevel: 'info',
      http: { apiKeys: [KEY] },
      credentials: { mode: 'secret', validitySec: 600 },
    });
  },
  async round(h, round) {
    const clientId = `bench-${round}`;
    const c = (await monitor.get(`/turncredential?user=${clientId}`, { headers: auth })).body as {
      username: string;
      password: string;
    };
    // uclient's probe allocations stay alive after it exits: 5 clients, 5 live allocations.
    await runUclient(h, {
      turnPort: monitor.turnPort,
      peerPort: peer.port,
      user: c.username,
      password: c.password,
      clients: 5,
      messages: 1,
      length: 50,
    });
    while ((await held(clientId)) !== 5) await sleep(20);
    const t0 = performance.now();
    const r = await fetch(`${monitor.httpUrl}/clients/${clientId}/revoke`, { method: 'POST', headers: auth });
    if (r.status !== 200) throw new Error(`revoke: HTTP ${r.status}`);
    while ((await held(clientId)) > 0) await sleep(2);
    return { ms: performance.now() - t0 };
  },
};
