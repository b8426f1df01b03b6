import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Harness } from '../test/harness/harness.js';

export type Figures = Record<string, number>;

export interface Benchmark {
  name: string;
  /** Goals shown next to the figures (text), by figure name. */
  goals: Record<string, string>;
  /** One round: ours and its baseline, run back to back, within one harness. */
  round(h: Harness, round: number): Promise<Figures>;
  /** Rounds to run (default 3; alternating ours and baseline inside each round). */
  rounds?: number;
  /** Rounds run first and thrown away (cold caches, JIT, first allocations); default 0. */
  warmup?: number;
  /** Figures over all rounds together (e.g. CPU summed over every round), after the last one. */
  finish?(): Figures;
  /** Set-up shared by the rounds (processes kept across rounds). */
  setup?(h: Harness): Promise<void>;
}

export interface Summary {
  min: number;
  median: number;
  max: number;
  runs: number[];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function summarize(values: number[]): Summary {
  const r = (n: number) => Math.round(n * 1000) / 1000;
  return { min: r(Math.min(...values)), median: r(median(values)), max: r(Math.max(...values)), runs: values.map(r) };
}

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resident memory of a process in MB, from /proc. */
export function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
}

/**
 * Collect garbage in this (the harness) process, if the runner exposed gc, and let the machine
 * settle, so none of the harness's own work lands inside a timed window.
 */
export async function quiesce(ms = 200): Promise<void> {
  (globalThis as { gc?: () => void }).gc?.();
  await sleep(ms);
}

export type Side = 'ours' | 'bare';

/**
 * Hold every thread of a process to one core. Two workers compared on this VM are held to the
 * same core: left to the scheduler, each kept to a core of its own for seconds, and the two
 * cores do not run at the same speed, so the ratio followed the cores, not the code.
 */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync('taskset', ['-apc', String(cpu), String(pid)], { stdio: 'ignore' });
}

/** The core pinned sides run on; the harness keeps the other one. */
export const SIDES_CPU = 1;

/** What one timed run of a side measured: wall seconds, and CPU seconds where the side counts them. */
export interface Timed {
  wall: number;
  cpu?: number;
}

/** One adjacent pair: what each side's run measured. */
export type Pair = Record<Side, Timed>;

/**
 * `pairs` adjacent runs of ours and the baseline, the order swapped every pair (ABBA); returns
 * what every pair measured. `prepare`, when given, sets up both runs of a pair before the first
 * of them, so the two timed runs follow each other with nothing in between.
 */
export async function alternate(
  pairs: number,
  run: (side: Side, pair: number) => Promise<Timed>,
  prepare?: (order: readonly Side[], pair: number) => Promise<void>,
): Promise<Pair[]> {
  const measured: Pair[] = [];
  for (let pair = 0; pair < pairs; pair++) {
    const order = pair % 2 ? (['bare', 'ours'] as const) : (['ours', 'bare'] as const);
    await prepare?.(order, pair);
    const p = {} as Pair;
    for (const side of order) p[side] = await run(side, pair);
    measured.push(p);
  }
  return measured;
}

const sum = (pairs: Pair[], side: Side, k: keyof Timed) => pairs.reduce((s, p) => s + (p[side][k] ?? NaN), 0);

/**
 * Throughput figures of both sides over `pairs`, each run of a side covering `count` items, from
 * each side's summed seconds: `ratio` (items/s, ours over bare), each side's rate, and where the
 * sides count CPU, `cpu_ratio` (items per CPU-second) and each side's rate per CPU-second.
 */
export function rateFigures(unit: string, count: number, pairs: Pair[]): Figures {
  const total = count * pairs.length;
  const rate = (side: Side, k: keyof Timed) => total / sum(pairs, side, k);
  const figures: Figures = {
    ratio: rate('ours', 'wall') / rate('bare', 'wall'),
    [`ours_${unit}_s`]: rate('ours', 'wall'),
    [`bare_${unit}_s`]: rate('bare', 'wall'),
  };
  if (pairs.every((p) => p.ours.cpu !== undefined && p.bare.cpu !== undefined)) {
    figures.cpu_ratio = rate('ours', 'cpu') / rate('bare', 'cpu');
    figures[`ours_${unit}_cpu_s`] = rate('ours', 'cpu');
    figures[`bare_${unit}_cpu_s`] = rate('bare', 'cpu');
  }
  return figures;
}
