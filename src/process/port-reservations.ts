import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isAlive } from './pids.js';

/**
 * Port reservations shared by every process of one machine that names the same directory in
 * TURN_MONITOR_PORT_LOCKS (the test harness and the benchmarks set it; their monitors inherit it).
 * Probing a port and binding it are two steps: without a reservation, two test files running at
 * once can both find a port free and hand it to two servers, or one can take a port another's
 * turnserver leaves free for its restart delay. A reservation is a file named after what it holds,
 * created exclusively, holding the owner's pid; it lasts until the owner exits, and one left by a
 * killed owner is taken over. Without the variable, reservations are in-process only.
 */
export const PORT_LOCKS_ENV = 'TURN_MONITOR_PORT_LOCKS';

const mine = new Set<string>();
let exitHookAdded = false;

/** The directory made so far (made once, not on every reservation). */
let made: string | null = null;

function lockDir(): string | null {
  const dir = process.env[PORT_LOCKS_ENV];
  if (!dir) return null;
  if (made !== dir) mkdirSync(dir, { recursive: true });
  made = dir;
  return dir;
}

function ownerOf(file: string): number | null {
  try {
    const pid = Number(readFileSync(file, 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

function releaseAllAtExit(): void {
  if (exitHookAdded) return;
  exitHookAdded = true;
  process.once('exit', () => {
    for (const file of mine) if (ownerOf(file) === process.pid) rmQuiet(file);
  });
}

function rmQuiet(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // already gone
  }
}

/**
 * Reserve `name` (e.g. "port-28151") for this process. False when another live process holds it,
 * or this one does and `reuseOwn` is false. Always true without a shared directory.
 */
export function reserve(name: string, reuseOwn = false): boolean {
  const dir = lockDir();
  if (!dir) return true;
  const file = path.join(dir, name);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx' });
      mine.add(file);
      releaseAllAtExit();
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = ownerOf(file);
    if (owner === process.pid) return reuseOwn;
    // A reservation being written has no pid yet: treat it as held.
    if (owner === null || isAlive(owner)) return false;
    rmQuiet(file); // its owner is gone: take it over once
  }
  return false;
}

/** Give back a reservation this process holds (a probe found the port in use after all). */
export function release(name: string): void {
  const dir = lockDir();
  if (!dir) return;
  const file = path.join(dir, name);
  if (ownerOf(file) === process.pid) rmQuiet(file);
  mine.delete(file);
}
