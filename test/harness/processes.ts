import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** Live processes whose command line mentions the marker (a test's temp dir or port). */
export function processesMentioning(marker: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid !== process.pid && cmdline(pid).includes(marker) && alive(pid)) out.push(pid);
  }
  return out;
}

/** Zombie children of a process (a supervisor that forgot to wait()). */
export function zombieChildren(parentPid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z' && Number(rest[1]) === parentPid) out.push(Number(name));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** SIGTERM, then SIGKILL after timeoutMs; resolves once the pid is gone. */
export async function killPid(pid: number, timeoutMs = 3000): Promise<void> {
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  };
  send('SIGCONT');
  send('SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await sleep(20);
  if (alive(pid)) {
    send('SIGKILL');
    while (alive(pid)) await sleep(20);
  }
}

/**
 * Poll until the predicate holds (for state outside our process: /proc, files, a ZooKeeper read).
 * Each call is bounded by the time left: a predicate stuck on a dead server must still time out.
 */
export async function waitUntil(what: string, predicate: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) {
      const why = lastError instanceof Error ? ` (last attempt: ${lastError.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), left)));
    const attempt = Promise.resolve()
      .then(predicate)
      .catch((err: unknown) => {
        lastError = err;
        return false;
      });
    const ok = await Promise.race([attempt, expired]);
    clearTimeout(timer);
    if (ok) return;
    await sleep(25);
  }
}
