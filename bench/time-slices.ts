import { readFileSync } from 'node:fs';
import { cpuSeconds } from './cpu.js';
import type { Side } from './lib.js';

/** Bytes a process has read so far (every thread, files and sockets alike), from /proc/<pid>/io. */
export function bytesRead(pid: number): number {
  return Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))![1]);
}

export interface SliceTotals {
  /** Seconds the side was let run. */
  wall: number;
  /** CPU seconds it used meanwhile (every thread). */
  cpu: number;
  /** Bytes it read meanwhile: its progress through its input. */
  bytes: number;
}

const cell = new Int32Array(new SharedArrayBuffer(4));
/** Blocks this thread for `ms` without using a core (the side that runs may need both). */
const block = (ms: number) => Atomics.wait(cell, 0, 0, ms);

/**
 * Two stopped processes run in turns, one at a time: `turns` turns of `sliceMs` each per side,
 * the order swapped every pair (ABBA); what each did over its turns. This VM's speed moves
 * between levels held for a fraction of a second: turns much shorter than that give both sides
 * the same mix of levels, which one run of a side after the other (a second or more each) did not.
 * Both are stopped again on return.
 */
export function timeSlices(pids: Record<Side, number>, sliceMs: number, turns: number): Record<Side, SliceTotals> {
  const sides = ['ours', 'bare'] as const;
  const before = Object.fromEntries(sides.map((s) => [s, { cpu: cpuSeconds(pids[s]), bytes: bytesRead(pids[s]) }]));
  const wall = { ours: 0, bare: 0 };
  for (let pair = 0; pair < turns; pair++) {
    for (const side of pair % 2 ? (['bare', 'ours'] as const) : sides) {
      // Each turn is timed from its own signals: how late the wait ends does not matter.
      const t0 = performance.now();
      process.kill(pids[side], 'SIGCONT');
      block(sliceMs);
      process.kill(pids[side], 'SIGSTOP');
      wall[side] += (performance.now() - t0) / 1000;
    }
  }
  const totals = (s: Side): SliceTotals => ({
    wall: wall[s],
    cpu: cpuSeconds(pids[s]) - before[s].cpu,
    bytes: bytesRead(pids[s]) - before[s].bytes,
  });
  return { ours: totals('ours'), bare: totals('bare') };
}
