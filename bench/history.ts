import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';
import { generateHistory } from '../test/harness/history.js';
import { cliToFile } from '../test/harness/cli.js';
import { startMonitor, testConfig, type MonitorProcess } from '../test/harness/monitor.js';
import { STATS_API_KEY, statsConfig } from '../test/harness/statsdb.js';
import { pruneFigures } from './history-prune.js';
import { waitUntil } from '../src/process/wait.js';
import { median, percentile, quiesce, rssMb, type Benchmark, type Figures } from './lib.js';

const DAY = 86_400_000;
const SIZES = { '1m': 1_000_000, '4m': 4_000_000 } as const;
type Size = keyof typeof SIZES;
const QUERIES_PER_ROUND = 24;
const PROBE_MS = 50;
const auth = { headers: { authorization: `Bearer ${STATS_API_KEY}` } };
const WARMUP = 1;
const ROUNDS = 7;
const monitors = {} as Record<Size, MonitorProcess>;
let endAt = 0;

/**
 * A monitor on a usage.db holding `rows` closed allocations (50,000 clients) at the density of a
 * million a year: the 4 M store holds four years, so a day holds the same rows in both and the
 * ratio shows what the history outside the window costs.
 */
async function monitorOn(h: Harness, size: Size): Promise<MonitorProcess> {
  const config = await testConfig(h, {
    ...statsConfig,
    // Credential requests every 50 ms are the probe here, not a client to limit.
    http: { ...statsConfig.http, rateLimitPerMinute: 1_000_000 },
    logLevel: 'info',
    stats: { retentionDays: null },
  });
  config.dataDir = path.join(h.dir, size, 'data');
  const db = path.join(config.dataDir as string, 'usage.db');
  mkdirSync(path.dirname(db), { recursive: true });
  generateHistory(db, { rows: SIZES[size], clients: 50_000, endAt, spanMs: (SIZES[size] / 1_000_000) * 365 * DAY });
  return startMonitor(h, {}, { rawConfig: config, configFile: path.join(h.dir, size, 'config.json') });
}

/** GET /usage?by=user for one whole day of the stored year: milliseconds to the last byte. */
async function oneDay(m: MonitorProcess, day: number): Promise<number> {
  const from = new Date(endAt - day * DAY).toISOString();
  const to = new Date(endAt - (day - 1) * DAY).toISOString();
  const t0 = performance.now();
  const r = await m.get(`/usage?by=user&from=${from}&to=${to}&limit=10000`, auth);
  if (r.status !== 200 || r.body.rows.length === 0) throw new Error(`one day of users: HTTP ${r.status}`);
  return performance.now() - t0;
}

/**
 * /turncredential every PROBE_MS from a process of its own while `work` runs: the longest wait for
 * an answer and the longest gap between two answers beyond the probe period, and the largest RSS
 * of the monitor and the watched processes, sampled meanwhile.
 */
async function whileProbing(h: Harness, m: MonitorProcess, work: () => Promise<void>, watch: () => number[]) {
  const prober = h.spawn('prober', process.execPath, [
    '--import',
    'tsx',
    path.join(import.meta.dirname, 'workers', 'credential-prober.ts'),
    `${m.httpUrl}/turncredential`,
    STATS_API_KEY,
    String(PROBE_MS),
  ]);
  await waitUntil('the prober probing', () => prober.output().includes('probing'), 10_000);
  const rss = new Map<number, number>();
  const sampler = setInterval(() => {
    for (const pid of [m.pid, ...watch()]) {
      try {
        rss.set(pid, Math.max(rss.get(pid) ?? 0, rssMb(pid)));
      } catch {
        /* exited */
      }
    }
  }, 100);
  try {
    await work();
  } finally {
    clearInterval(sampler);
    prober.child.kill('SIGTERM');
  }
  const exit = await prober.exited;
  const result = /\{.*\}/.exec(prober.output());
  if (exit.code !== 0 || !result) throw new Error(`prober failed: ${prober.output().slice(-300)}`);
  const { maxWaitMs, maxGapMs } = JSON.parse(result[0]) as { maxWaitMs: number; maxGapMs: number };
  return { maxWait: maxWaitMs, maxGap: maxGapMs, rss };
}

/**
 * Every page of the whole store, by allocation, 10,000 rows a page. The bodies are read as streams
 * and not parsed (the cursor leads the body): parsing megabytes here would stall the prober that
 * shares this process, and the stall measured would be ours.
 */
async function pageEverything(m: MonitorProcess): Promise<number> {
  let query = `/usage?from=${new Date(endAt - 5 * 365 * DAY).toISOString()}&limit=10000`;
  let rows = 0;
  for (;;) {
    const res = await fetch(m.httpUrl + query, auth);
    if (res.status !== 200) throw new Error(`paging: HTTP ${res.status}`);
    rows += Number(res.headers.get('x-usage-rows'));
    const decoder = new TextDecoder();
    let head = '';
    let cursor: string | null | undefined;
    for await (const chunk of res.body!) {
      if (cursor !== undefined) continue;
      head += decoder.decode(chunk, { stream: true });
      const c = /^\{"cursor":(null|"([A-Za-z0-9_-]+)")/.exec(head);
      if (c) cursor = c[2] ?? null;
    }
    if (cursor === undefined) throw new Error('paging: no cursor at the head of the body');
    if (cursor === null) return rows;
    query = `/usage?cursor=${cursor}&limit=10000`;
  }
}

/** `turn-monitor usage --by session --format csv` over everything, into a file. */
async function cliExport(h: Harness, m: MonitorProcess, onPid: (pid: number) => void): Promise<void> {
  const args = ['usage', '--config', m.configFile, '--by', 'session', '--format', 'csv'];
  const cli = cliToFile(h, args, path.join(h.dir, 'sessions.csv'));
  onPid(cli.pid);
  const exit = await cli.exited;
  if (exit.code !== 0) throw new Error(`usage --by session: exit ${exit.code} ${cli.output().slice(0, 300)}`);
}

/**
 * Usage history of 1 M and 4 M stored allocations (a year, 50,000 clients), each in a monitor of
 * its own: one day by user (p99 per size; cost must not grow with what lies outside the window),
 * then, on the larger one, how long credential requests wait while the whole history is paged
 * through and while the CLI exports every session, with the RSS of the monitor and the CLI.
 */
export const history: Benchmark = {
  name: 'history',
  goals: {
    day_by_user_p99_ms_1m: '≤ 200',
    day_by_user_p99_ms_4m: '≤ 200',
    day_by_user_ratio_4m_1m: '≤ 1.3',
    paging_credential_wait_max_ms: '≤ 50',
    paging_credential_gap_max_ms: '≤ 50',
    export_credential_wait_max_ms: '≤ 50',
    export_credential_gap_max_ms: '≤ 50',
    monitor_rss_mb: '≤ 200',
    cli_rss_mb: '≤ 150',
    prune_rows_per_s: '-',
    relay_ratio_pruning: '≥ 0.98',
    prune_pairs: '-',
  },
  warmup: WARMUP,
  rounds: ROUNDS,
  async setup(h) {
    endAt = Date.now() - 60_000;
    monitors['1m'] = await monitorOn(h, '1m');
    monitors['4m'] = await monitorOn(h, '4m');
  },
  async round(h, round) {
    const times: Record<Size, number[]> = { '1m': [], '4m': [] };
    for (let i = 0; i < QUERIES_PER_ROUND; i++) {
      const day = 2 + (((round * QUERIES_PER_ROUND + i) * 37) % 360);
      const order: Size[] = i % 2 ? ['4m', '1m'] : ['1m', '4m'];
      for (const size of order) times[size].push(await oneDay(monitors[size], day));
    }
    const figures: Figures = {
      day_by_user_p99_ms_1m: percentile(times['1m'], 99),
      day_by_user_p99_ms_4m: percentile(times['4m'], 99),
      day_by_user_ratio_4m_1m: median(times['4m']) / median(times['1m']),
    };
    // Once, after the last round: each takes minutes.
    return round === WARMUP + ROUNDS - 1 ? { ...figures, ...(await endToEnd(h)), ...(await pruneFigures(h)) } : figures;
  },
};

/** History read end to end beside credential requests, on the larger store. */
async function endToEnd(h: Harness): Promise<Figures> {
  const m = monitors['4m'];
  await quiesce();
  let cliPid = 0;
  const paging = await whileProbing(
    h,
    m,
    async () => void (await pageEverything(m)),
    () => [],
  );
  const exporting = await whileProbing(
    h,
    m,
    () => cliExport(h, m, (pid) => (cliPid = pid)),
    () => (cliPid ? [cliPid] : []),
  );
  return {
    paging_credential_wait_max_ms: paging.maxWait,
    paging_credential_gap_max_ms: paging.maxGap,
    export_credential_wait_max_ms: exporting.maxWait,
    export_credential_gap_max_ms: exporting.maxGap,
    monitor_rss_mb: Math.max(paging.rss.get(m.pid) ?? 0, exporting.rss.get(m.pid) ?? 0),
    cli_rss_mb: exporting.rss.get(cliPid) ?? 0,
  };
}
