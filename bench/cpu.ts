import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ: 100 on every Linux this runs on). */
const TICKS_PER_SEC = 100;

/** CPU seconds (user + system, all threads) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may contain spaces: count fields from after its closing paren.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SEC; // utime, stime (fields 14, 15)
}

/** CPU used by each of some processes between start() and stop(), in seconds, and the wall time. */
export class CpuWindow {
  private readonly t0 = performance.now();
  private readonly c0: number[];

  constructor(private readonly pids: number[]) {
    this.c0 = pids.map(cpuSeconds);
  }

  stop(): { wallSec: number; cpuSec: number[] } {
    const cpuSec = this.pids.map((p, i) => cpuSeconds(p) - this.c0[i]);
    return { wallSec: (performance.now() - this.t0) / 1000, cpuSec };
  }
}
