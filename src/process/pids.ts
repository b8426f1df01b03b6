import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** True while a process with this pid exists and is not a zombie (EPERM: it exists, just not ours). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A zombie still answers kill(0); its state letter in /proc/<pid>/stat is 'Z'.
  return procState(pid)?.state !== 'Z';
}

/** State letter and parent pid from /proc/<pid>/stat, or null when it is gone. */
function procState(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}

/** The argv of a running process, or null when it is gone. */
export function readCmdline(pid: number): string[] | null {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return null;
  }
}

/** The command line as one string ('' when gone): for log lines and substring matches. */
export function cmdlineText(pid: number): string {
  return (readCmdline(pid) ?? []).join(' ');
}

function allPids(): number[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .map(Number)
    .filter((pid) => pid !== process.pid);
}

/** Pids of live processes whose argv satisfies the predicate (read from /proc). */
export function findProcesses(match: (argv: string[]) => boolean): number[] {
  return allPids().filter((pid) => {
    const argv = readCmdline(pid);
    return argv !== null && argv.length > 0 && match(argv) && isAlive(pid);
  });
}

/** Live processes whose command line mentions the marker (a temp dir, a port). */
export function processesMentioning(marker: string): number[] {
  return findProcesses((argv) => argv.join(' ').includes(marker));
}

/** Zombie children of a process (a supervisor that forgot to wait()). */
export function zombieChildren(parentPid: number): number[] {
  return allPids().filter((pid) => {
    const s = procState(pid);
    return s !== null && s.state === 'Z' && s.ppid === parentPid;
  });
}

/** Wait until the pid is gone, polling /proc; resolves false on timeout. */
export async function waitForPidExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await sleep(20);
  }
  return true;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/**
 * Stop a process by pid (one that is not our child, or any in a test): SIGCONT (a stopped
 * process cannot act on SIGTERM), SIGTERM, SIGKILL after timeoutMs; resolves once it is gone.
 */
export async function killPid(pid: number, timeoutMs = 3000): Promise<void> {
  signal(pid, 'SIGCONT');
  signal(pid, 'SIGTERM');
  if (await waitForPidExit(pid, timeoutMs)) return;
  signal(pid, 'SIGKILL');
  await waitForPidExit(pid, 5000);
}

let bootMs: number | null = null;

/**
 * When a process started (ms since epoch), from /proc/<pid>/stat (field 22, clock ticks since
 * boot; USER_HZ is 100 on Linux) and the boot time in /proc/stat. The same value for every
 * reader, so it identifies a process across monitors; null when it is gone.
 */
export function procStartMs(pid: number): number | null {
  try {
    bootMs ??= Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))?.[1]) * 1000;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ticks = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
    return Number.isFinite(ticks) && bootMs > 0 ? bootMs + ticks * 10 : null;
  } catch {
    return null;
  }
}
