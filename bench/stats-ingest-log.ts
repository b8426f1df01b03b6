import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';
import { monitorNodeArgs } from '../test/harness/monitor.js';
import { alternate, rateFigures, type Benchmark, type Side } from './lib.js';

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

/** The workers' CPU seconds over a round's runs, by side (their own count, every thread). */
let cpuSpent: Record<Side, number> = { ours: 0, bare: 0 };

/** Seconds one worker took over the file's lines (from its first line); its CPU seconds go to `cpuSpent`. */
async function run(h: Harness, mode: Side, file: string): Promise<number> {
  // Both run with the monitor's own node flags (its launcher's shebang): the same runtime. The
  // file is the worker's stdin itself: through `cat |` the bare counter needed a second core for
  // cat, and lost a third of its rate whenever this VM's other core was busy (ours, bound by its
  // own CPU, barely moved), so the ratio followed the machine's load.
  const flags = monitorNodeArgs.join(' ');
  const r = await h.run(`log-${mode}`, 'bash', [
    '-c',
    `"${process.execPath}" ${flags} --import tsx "${worker}" ${mode} < "${file}"`,
  ]);
  const m = /lines=(\d+) ms=([\d.]+) cpu_ms=([\d.]+)/.exec(r.output);
  if (!m) throw new Error(`log worker failed: ${r.output.slice(-300)}`);
  if (Number(m[1]) !== lines) throw new Error(`log worker read ${m[1]} lines of ${lines}`);
  cpuSpent[mode] += Number(m[3]) / 1000;
  return Number(m[2]) / 1000;
}

const PAIRS = 8; // per round
let lines = 0;

/**
 * One round = PAIRS adjacent pairs of runs (ours, bare), the order swapped every pair (ABBA), each
 * side's rate from its summed time: one run of the bare counter (a fraction of a second) moves
 * by a fifth from the next on this VM, a sum over several far less. `ratio` is lines per second
 * (wall), `cpu_ratio` lines per CPU-second (what each worker counts for itself).
 */
export const statsIngestLog: Benchmark = {
  name: 'stats_ingest_log',
  goals: { ratio: '≥ 0.5', cpu_ratio: '-', ours_lines_s: '-', bare_lines_s: '-' },
  warmup: 1,
  rounds: 5,
  async round(h, round) {
    const file = path.join(h.dir, 'turnserver.log');
    if (round === 0) lines = writeLog(file);
    cpuSpent = { ours: 0, bare: 0 };
    const wall = await alternate(PAIRS, (mode) => run(h, mode, file));
    return rateFigures('lines', PAIRS * lines, wall, cpuSpent);
  },
};
