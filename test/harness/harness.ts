import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { cmdlineText, isAlive, killPid, processesMentioning } from '../../src/process/pids.js';
import { PORT_LOCKS_ENV } from '../../src/process/port-reservations.js';

// Test files run in parallel processes, and their monitors pick ports too: all of them reserve
// the ports they pick in one directory, so no two servers are ever handed the same port.
process.env[PORT_LOCKS_ENV] ??= path.join(os.tmpdir(), 'turn-monitor-ports');

/** Exit of a child we spawned. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Tracked {
  child: ChildProcess;
  pid: number;
  name: string;
  exited: Promise<Exit>;
  /** Everything the process wrote (stdout then stderr interleaved as received). */
  output(): string;
}

/**
 * Per-test sandbox: a temp dir, and every process the test starts, stopped by PID at the end.
 * cleanup() fails the test when anything mentioning the temp dir (or named in a pidfile under
 * it) is still alive after our own processes were stopped: a leak is a failure.
 */
export class Harness {
  private readonly tracked: Tracked[] = [];
  private readonly cleanups: (() => Promise<void>)[] = [];
  private closed = false;

  private constructor(readonly dir: string) {}

  static async create(label = 'tm'): Promise<Harness> {
    return new Harness(await mkdtemp(path.join(os.tmpdir(), `${label}-`)));
  }

  /** Spawn a tracked process; its output is kept in memory and in <dir>/<name>.out. */
  spawn(name: string, file: string, args: string[], opts: SpawnOptions = {}): Tracked {
    // A body abandoned on timeout may still be running: it must not start anything after clean-up.
    if (this.closed) throw new Error(`harness closed: not spawning ${name}`);
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    if (child.pid === undefined) throw new Error(`cannot spawn ${file}`);
    const chunks: string[] = [];
    const file$ = createWriteStream(path.join(this.dir, `${name}.${child.pid}.out`));
    for (const s of [child.stdout, child.stderr]) {
      s?.setEncoding('utf8');
      s?.on('data', (d: string) => {
        chunks.push(d);
        file$.write(d);
      });
    }
    const exited = new Promise<Exit>((resolve) =>
      child.once('exit', (code, signal) => {
        file$.end();
        resolve({ code, signal });
      }),
    );
    const t: Tracked = { child, pid: child.pid, name, exited, output: () => chunks.join('') };
    this.tracked.push(t);
    return t;
  }

  /** Run a command to completion (tracked, so a hang is still cleaned up). */
  async run(
    name: string,
    file: string,
    args: string[],
    opts: SpawnOptions & { timeoutMs?: number } = {},
  ): Promise<Exit & { output: string }> {
    const t = this.spawn(name, file, args, opts);
    const timer = setTimeout(() => void killPid(t.pid, 1000), opts.timeoutMs ?? 60_000);
    const exit = await t.exited;
    clearTimeout(timer);
    return { ...exit, output: t.output() };
  }

  /** Register extra clean-up work (closing clients) run before processes are stopped. */
  onCleanup(fn: () => Promise<void>): void {
    this.cleanups.push(fn);
  }

  /** Pids named in pidfiles under the temp dir (redis rewrites its command line). */
  private pidfilePids(): number[] {
    const out: number[] = [];
    const walk = (dir: string) => {
      let entries;
      try {
        entries = readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith('.pid')) {
          const pid = Number(readFileSync(p, 'utf8').trim());
          if (pid > 0 && isAlive(pid) && /turnserver|redis|java|node/.test(cmdlineText(pid))) out.push(pid);
        }
      }
    };
    walk(this.dir);
    return out;
  }

  async cleanup(keepDir = false): Promise<void> {
    this.closed = true;
    // Each step is bounded: a client stuck on a dead server must not stop the processes' clean-up.
    for (const fn of this.cleanups.reverse()) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)));
      await Promise.race([fn().catch(() => undefined), bound]);
      clearTimeout(timer);
    }
    // In reverse spawn order, each given time for a graceful stop: a monitor stops before the
    // ZooKeeper, Redis or PostgreSQL it was started on, and does not wait on a server already gone.
    for (const t of [...this.tracked].reverse()) if (isAlive(t.pid)) await killPid(t.pid, 10_000);
    const leaked = [...new Set([...processesMentioning(this.dir), ...this.pidfilePids()])];
    const described = leaked.map((pid) => `${pid} ${cmdlineText(pid)}`);
    await Promise.all(leaked.map((pid) => killPid(pid, 1000)));
    if (!keepDir) await rm(this.dir, { recursive: true, force: true });
    if (leaked.length > 0) throw new Error(`test left processes behind:\n${described.join('\n')}`);
  }
}

/**
 * A node:test test with a Harness; the harness is always cleaned up and a leaked process fails
 * the test. The temp dir is kept (and named) when the test fails, for post-mortems.
 */
export function harnessTest(
  name: string,
  fn: (h: Harness, t: TestContext) => Promise<void>,
  options: { timeout?: number; skip?: boolean | string } = {},
): void {
  const bodyMs = options.timeout ?? 60_000;
  // Our own deadline on the body, so clean-up still runs when it hangs: node:test's timeout only
  // abandons the function, and the processes it started would keep the test file alive forever.
  test(name, { timeout: bodyMs + CLEANUP_MS, skip: options.skip }, async (t) => {
    const h = await Harness.create();
    let failed = true;
    let failure: unknown;
    let timer: NodeJS.Timeout | undefined;
    try {
      const body = fn(h, t);
      body.catch(() => undefined);
      const deadline = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`test body did not finish within ${bodyMs} ms`)), bodyMs);
      });
      await Promise.race([body, deadline]);
      failed = false;
    } catch (err) {
      failure = err;
    }
    clearTimeout(timer);
    if (failed) t.diagnostic(`kept temp dir ${h.dir}`);
    try {
      await h.cleanup(failed);
    } catch (err) {
      // After a failed body the clean-up's complaint (a monitor killed mid-shutdown leaves its
      // children) must not replace the body's own error, which says what went wrong.
      if (!failed) throw err;
      t.diagnostic(`clean-up after the failure: ${(err as Error).message}`);
    }
    if (failed) throw failure;
  });
}

/** Time left to clean-up after a body's deadline (SIGTERM, SIGKILL after a grace, leak check). */
const CLEANUP_MS = 60_000;

export async function waitExit(t: Tracked, timeoutMs = 10_000): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${t.name} (${t.pid}) did not exit within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([t.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
