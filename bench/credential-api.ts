import path from 'node:path';
import autocannon from 'autocannon';
import type { Harness } from '../test/harness/harness.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { alternate, percentile, quiesce, type Benchmark, type Side } from './lib.js';
import { freePort } from '../src/process/ports.js';
import { waitUntil } from '../src/process/wait.js';

const KEY = 'bench-api-key-0123456789';
let monitor: MonitorProcess;
let bareUrl: string;

const SLICE_REQUESTS = 20_000;
const SLICES = 8; // per side and round

/**
 * One slice: a fixed number of requests over 10 connections; the time to its last answer (autocannon
 * itself only ends on its next one-second tick) and its p99.
 */
async function slice(url: string, headers: Record<string, string>) {
  const t0 = performance.now();
  let answered = 0;
  let last = 0;
  const r = await new Promise<autocannon.Result>((resolve, reject) => {
    const run = autocannon({ url, connections: 10, amount: SLICE_REQUESTS, headers }, (err, result) =>
      err ? reject(err as Error) : resolve(result),
    );
    run.on('response', () => {
      if (++answered === SLICE_REQUESTS) last = performance.now();
    });
  });
  return { seconds: ((last || performance.now()) - t0) / 1000, p99: r.latency.p99, non2xx: r.non2xx };
}

type Load = { url: string; headers: Record<string, string>; p99: number[]; non2xx: number };
const load = (url: string, headers: Record<string, string> = {}): Load => ({ url, headers, p99: [], non2xx: 0 });

/**
 * One round: short slices of the two sides alternated (ABBA), each side's rate from its summed
 * time. This VM's speed moves within seconds; slices a fraction of a second long see the same
 * machine on both sides.
 */
async function interleaved(loads: Record<Side, Load>): Promise<Record<Side, number>> {
  // autocannon runs in this process: the last round's garbage is collected before this one.
  await quiesce();
  const seconds = await alternate(SLICES, async (side) => {
    const l = loads[side];
    const r = await slice(l.url, l.headers);
    l.p99.push(r.p99);
    l.non2xx += r.non2xx;
    return r.seconds;
  });
  return { ours: (SLICES * SLICE_REQUESTS) / seconds.ours, bare: (SLICES * SLICE_REQUESTS) / seconds.bare };
}

export const credentialApi: Benchmark = {
  name: 'credential_api',
  goals: { ratio: '≥ 0.7', p99_ms: '≤ 5', bare_p99_ms: '-', ours_rps: '-', bare_rps: '-' },
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
  async round() {
    const loads = {
      ours: load(`${monitor.httpUrl}/turncredential`, { authorization: `Bearer ${KEY}` }),
      bare: load(bareUrl),
    };
    const rps = await interleaved(loads);
    if (loads.ours.non2xx > 0) throw new Error(`${loads.ours.non2xx} non-2xx answers from the monitor`);
    return {
      ratio: rps.ours / rps.bare,
      p99_ms: percentile(loads.ours.p99, 50),
      bare_p99_ms: percentile(loads.bare.p99, 50),
      ours_rps: rps.ours,
      bare_rps: rps.bare,
    };
  },
};
