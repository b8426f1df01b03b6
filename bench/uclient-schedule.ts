import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Harness } from '../test/harness/harness.js';

// turnutils_uclient seeds random() from the clock and starts each client at a random 1-6 s, so
// one run's length differs from the next by up to a second. This shim seeds it with a constant:
// every load, ours and bare alike, runs the same schedule.
const SHIM = `#define _GNU_SOURCE
#include <dlfcn.h>
void srandom(unsigned int seed) {
  (void)seed;
  ((void (*)(unsigned int))dlsym(RTLD_NEXT, "srandom"))(1);
}
`;

/**
 * The environment for turnutils_uclient runs with one fixed schedule (LD_PRELOAD of a shim built
 * with the system's C compiler into the harness's dir); without a compiler, the clock's schedule
 * and a warning, since the ratios then carry uclient's own spread.
 */
export async function fixedSchedule(h: Harness): Promise<NodeJS.ProcessEnv> {
  const source = path.join(h.dir, 'uclient-seed.c');
  const shim = path.join(h.dir, 'uclient-seed.so');
  writeFileSync(source, SHIM);
  try {
    execFileSync('cc', ['-shared', '-fPIC', '-O2', '-o', shim, source, '-ldl'], { stdio: 'pipe' });
  } catch (err) {
    console.warn(`uclient runs unseeded (no C compiler: ${(err as Error).message.split('\n')[0]})`);
    return { ...process.env };
  }
  return { ...process.env, LD_PRELOAD: shim };
}
