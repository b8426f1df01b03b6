import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { alive, cmdline, killPid, processesMentioning } from './processes.js';

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

  private constructor(readonly dir: string) {}

  static async create(label = 'tm'): Promise<Harness> {
    return new Harness(await mkdtemp(path.join(os.tmpdir(), `${label}-`)));
  }

  /** Spawn a tracked process; its output is kept in memory and in <dir>/<name>.out. */
  spawn(name: string, file: string, args: string[], opts: SpawnOptions = {}): Tracked {
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
  async run(name: string, file: string, args: string[], opts: SpawnOptions & { timeoutMs?: number } = {}): Promise<Exit & { output: string }> {
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
          if (pid > 0 && alive(pid) && /turnserver|redis|java|node/.test(cmdline(pid))) out.push(pid);
        }
      }
    };
    walk(this.dir);
    return out;
  }

  async cleanup(keepDir = false): Promise<void> {
    for (const fn of this.cleanups.reverse()) await fn().catch(() => undefined);
    await Promise.all(this.tracked.filter((t) => alive(t.pid)).map((t) => killPid(t.pid)));
    const leaked = [...new Set([...processesMentioning(this.dir), ...this.pidfilePids()])];
    const described = leaked.map((pid) => `${pid} ${cmdline(pid)}`);
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
  test(name, { timeout: options.timeout ?? 60_000, skip: options.skip }, async (t) => {
    const h = await Harness.create();
    let failed = true;
    try {
      await fn(h, t);
      failed = false;
    } finally {
      if (failed) t.diagnostic(`kept temp dir ${h.dir}`);
      await h.cleanup(failed);
    }
  });
}

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

export { once };
