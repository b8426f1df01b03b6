import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Harness, Tracked } from '../test/harness/harness.js';
import { spawnLikeMonitor } from '../test/harness/monitor.js';
import { waitUntil } from '../src/process/wait.js';
import { pinToCpu, SIDES_CPU, type Benchmark, type Side } from './lib.js';
import { timeSlices } from './time-slices.js';

const LINES = 1_000_000;
const worker = path.join(import.meta.dirname, 'workers', 'log-lines.ts');

/**
 * turnserver's verbose output as the supervisor sees it, with the mix of lines observed from a
 * real turnserver relaying uclient traffic: per allocation a `new`, refreshes, control-message
 * lines, peer lifetime updates, usage lines every 4096 packets and at close, `closed`, `delete`.
 */
/** Writes the log; returns its number of lines (the last allocation's run completes past LINES). */
export function writeLog(file: string): number {
  const out: string[] = [];
  for (let i = 0; out.length < LINES; i++) {
    const id = String((i % 2) * 1e15 + i + 1).padStart(18, '0');
    const user = `${1795000000 + (i % 97)}:client${i % 1000}`;
    const s = `${i % 10000}: : session ${id}:`;
    const usage = () => [
      `${s} usage: realm=<bench.org>, username=<${user}>, rp=4096, rb=421888, sp=4096, sb=413696`,
      `${s} peer usage: realm=<bench.org>, username=<${user}>, rp=4096, rb=409600, sp=4096, sb=409600`,
    ];
    out.push(`${s} realm <bench.org> user <${user}>: incoming packet ALLOCATE processed, success`);
    out.push(`${s} new, realm=<bench.org>, username=<${user}>, lifetime=600`);
    out.push(`${i % 10000}: : IPv4. Local relay addr: 127.0.0.1:${50000 + (i % 10000)}`);
    out.push(`${s} realm <bench.org> user <${user}>: incoming packet CREATE_PERMISSION processed, success`);
    out.push(`${s} peer 127.0.0.1 lifetime updated: 300`);
    out.push(`${s} realm <bench.org> user <${user}>: incoming packet CHANNEL_BIND processed, success`);
    out.push(`${s} peer 127.0.0.1:3480 lifetime updated: 600`);
    for (let k = 0; k < 3; k++) {
      out.push(`${s} realm <bench.org> user <${user}>: incoming packet REFRESH processed, success`);
      out.push(`${s} refreshed, realm=<bench.org>, username=<${user}>, lifetime=600`);
      out.push(...usage());
    }
    out.push(`${s} realm <bench.org> user <${user}>: incoming packet REFRESH processed, success`);
    out.push(`${s} refreshed, realm=<bench.org>, username=<${user}>, lifetime=0`);
    out.push(...usage());
    out.push(
      `${s} closed (2nd stage), user <${user}> realm <bench.org> origin <>, local 127.0.0.1:3478, remote 127.0.0.1:${10000 + (i % 50000)}, reason: allocation timeout`,
    );
    out.push(`${s} delete: realm=<bench.org>, username=<${user}>`);
    out.push(`${s} peer 127.0.0.1 deleted`);
  }
  writeFileSync(file, out.join('\n') + '\n');
  return out.length;
}

const SLICE_MS = 25;
const TURNS = 240; // per side and round: 6 s each
const workers = {} as Record<Side, Tracked>;
let bytesPerLine = 0;

/** A worker reading the file over and over, stopped once it has started. */
async function startWorker(h: Harness, mode: Side, file: string): Promise<Tracked> {
  // Both run with the monitor's own node flags (its launcher's shebang): the same runtime.
  const t = spawnLikeMonitor(h, `log-${mode}`, ['--import', 'tsx', worker, mode, file]);
  await waitUntil(`log-${mode} ready`, () => t.output().includes('ready'), 30_000);
  process.kill(t.pid, 'SIGSTOP');
  // Both workers on one core, each running where the other ran a moment ago (rounds spread by
  // twice as much when each kept to a core of its own).
  pinToCpu(t.pid, SIDES_CPU);
  return t;
}

/**
 * Both workers read the same file over and over; one round lets them run in turns of SLICE_MS,
 * the order swapped every pair (ABBA), TURNS turns each, and compares how far each got through
 * the file (bytes read) in the time it was let run (`ratio`, lines per second) and in the CPU
 * time it used (`cpu_ratio`, lines per CPU-second). Whole runs one after the other, each in a
 * fresh process, saw different speeds of this VM, which moves between levels a third apart held
 * for a fraction of a second: their per-pair ratios spread by 14 % (README, Performance).
 */
export const statsIngestLog: Benchmark = {
  name: 'stats_ingest_log',
  goals: { ratio: '≥ 0.5', cpu_ratio: '-', ours_lines_s: '-', bare_lines_s: '-' },
  // JIT and heap still settling in ours: its first rounds ran slower than the rest.
  warmup: 2,
  rounds: 19,
  async setup(h) {
    const file = path.join(h.dir, 'turnserver.log');
    const lines = writeLog(file);
    bytesPerLine = statSync(file).size / lines;
    for (const mode of ['ours', 'bare'] as const) workers[mode] = await startWorker(h, mode, file);
  },
  round() {
    const t = timeSlices({ ours: workers.ours.pid, bare: workers.bare.pid }, SLICE_MS, TURNS);
    const rate = (s: Side, k: 'wall' | 'cpu') => t[s].bytes / bytesPerLine / t[s][k];
    return Promise.resolve({
      ratio: rate('ours', 'wall') / rate('bare', 'wall'),
      cpu_ratio: rate('ours', 'cpu') / rate('bare', 'cpu'),
      ours_lines_s: rate('ours', 'wall'),
      bare_lines_s: rate('bare', 'wall'),
      ours_lines_cpu_s: rate('ours', 'cpu'),
      bare_lines_cpu_s: rate('bare', 'cpu'),
    });
  },
};
