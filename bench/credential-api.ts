import path from 'node:path';
import autocannon from 'autocannon';
import type { Harness } from '../test/harness/harness.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import type { Benchmark } from './lib.js';
import { freePort } from '../src/process/ports.js';
import { waitUntil } from '../src/process/wait.js';

const KEY = 'bench-api-key-0123456789';
let monitor: MonitorProcess;
let bareUrl: string;

async function load(url: string, headers: Record<string, string>) {
  const r = await autocannon({ url, connections: 10, duration: 3, headers });
  return { rps: r.requests.average, p99: r.latency.p99, non2xx: r.non2xx };
}

export const credentialApi: Benchmark = {
  name: 'credential_api',
  goals: { ratio: '≥ 0.7', p99_ms: '≤ 5', bare_p99_ms: '-' },
  warmup: 1,
  rounds: 9,
  async setup(h: Harness) {
    // The rate limit is per client IP; the benchmark is one client, so lift it.
    monitor = await startMonitor(h, { logLevel: 'info', http: { apiKeys: [KEY], rateLimitPerMinute: 100_000_000 } });
    const size = (await monitor.get('/turncredential', { headers: { authorization: `Bearer ${KEY}` } })).text.length;
    const port = await freePort();
    const t = h.spawn('bare-http', process.execPath, [
      '--import',
      'tsx',
      path.join(import.meta.dirname, 'workers', 'bare-http.ts'),
      String(port),
      String(size),
    ]);
    await waitUntil('bare server', () => t.output().includes('ready'), 20_000);
    bareUrl = `http://127.0.0.1:${port}/turncredential`;
  },
  async round(_h, round) {
    const ours = () => load(`${monitor.httpUrl}/turncredential`, { authorization: `Bearer ${KEY}` });
    const bare = () => load(bareUrl, {});
    const [a, b] = round % 2 ? [await bare(), await ours()] : [await ours(), await bare()];
    const [o, x] = round % 2 ? [b, a] : [a, b];
    if (o.non2xx > 0) throw new Error(`${o.non2xx} non-2xx answers from the monitor`);
    return { ratio: o.rps / x.rps, p99_ms: o.p99, bare_p99_ms: x.p99 };
  },
};
