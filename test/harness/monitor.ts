import { EventEmitter } from 'node:events';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ConfigInput } from '../../src/config/schema.js';
import { stunProbe } from '../../src/supervisor/stun-probe.js';
import { type Exit, type Harness, type Tracked, waitExit } from './harness.js';
import { freePort, freePortRange } from '../../src/process/ports.js';
import { isAlive, killPid } from '../../src/process/pids.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const monitorBin = path.join(repoRoot, 'bin', 'turn-monitor');
const pm2App = (
  (await import(pathToFileURL(path.join(repoRoot, 'ecosystem.config.js')).href)) as {
    apps: { node_args: string[]; env: Record<string, string> }[];
  }
).apps[0];
/** The node flags ops run the monitor with (pm2's node_args, read from the launcher's shebang there). */
export const monitorNodeArgs = pm2App.node_args;
/** The environment the launcher sets (pm2's env, from the same line), e.g. MALLOC_ARENA_MAX. */
export const monitorEnv = pm2App.env;

/** A node process (a benchmark's worker) in the monitor's own runtime: its node flags and environment. */
export function spawnLikeMonitor(h: Harness, name: string, args: string[]): Tracked {
  return h.spawn(name, process.execPath, [...monitorNodeArgs, ...args], { env: { ...process.env, ...monitorEnv } });
}

/** One JSON log line of the monitor. */
export type LogEntry = Record<string, unknown> & { level: string; msg: string; component?: string; event?: string };

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};
export type ConfigOverrides = DeepPartial<ConfigInput> & Record<string, unknown>;

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)
        ? merge(b as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

/** A config for a test monitor: loopback only, free ports, everything inside the temp dir. */
export async function testConfig(h: Harness, overrides: ConfigOverrides = {}): Promise<Record<string, unknown>> {
  const [minPort, maxPort] = await freePortRange(200);
  const base = {
    dataDir: path.join(h.dir, 'data'),
    logLevel: 'debug',
    turnserver: {
      listeningIp: '127.0.0.1',
      listeningPort: await freePort(),
      minPort,
      maxPort,
      realm: 'test.local',
      allowLoopbackPeers: true,
      probeIntervalMs: 500,
    },
    http: { host: '127.0.0.1', port: await freePort() },
    // SIGTERM stops at once, as before drains existed; the drain tests set their own.
    lifecycle: { drainTimeoutSec: 0 },
  };
  return merge(base, overrides as Record<string, unknown>);
}

/** The monitor as a child process (through bin/turn-monitor), its JSON log parsed as it comes. */
export class MonitorProcess extends EventEmitter {
  readonly logs: LogEntry[] = [];
  readonly rawLines: string[] = [];
  private buffer = '';

  constructor(
    readonly tracked: Tracked,
    readonly config: Record<string, unknown>,
    readonly configFile: string,
  ) {
    super();
    tracked.child.stdout?.on('data', (d: string) => this.onData(d));
  }

  get pid(): number {
    return this.tracked.pid;
  }
  get exited(): Promise<Exit> {
    return this.tracked.exited;
  }
  get httpUrl(): string {
    const http = this.config.http as { host: string; port: number };
    return `http://${http.host}:${http.port}`;
  }
  get turnPort(): number {
    return (this.config.turnserver as { listeningPort: number }).listeningPort;
  }
  get dataDir(): string {
    return this.config.dataDir as string;
  }
  /** Everything the monitor printed (stdout and stderr). */
  output(): string {
    return this.tracked.output();
  }

  private onData(d: string): void {
    this.buffer += d;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 1);
      this.rawLines.push(line);
      try {
        const entry = JSON.parse(line) as LogEntry;
        this.logs.push(entry);
        this.emit('log', entry);
      } catch {
        /* not JSON: kept in rawLines */
      }
    }
  }

  /**
   * Resolve with the first log entry (from index `from` on) that matches; waits on the log
   * stream, not on a sleep. Rejects on timeout or if the monitor exits first.
   */
  waitForLog(match: (e: LogEntry) => boolean, opts: { from?: number; timeoutMs?: number } = {}): Promise<LogEntry> {
    const found = this.logs.slice(opts.from ?? 0).find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? 15_000;
      const onLog = (e: LogEntry) => {
        if (!match(e)) return;
        done();
        resolve(e);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`no matching monitor log line within ${timeoutMs} ms; ${this.recentProblems(opts.from)}`));
      }, timeoutMs);
      const onExit = (code: number | null, signal: string | null) => {
        done();
        reject(new Error(`monitor exited (${signal ?? code}) before the expected log line; ${this.recentProblems()}`));
      };
      const done = () => {
        clearTimeout(timer);
        this.off('log', onLog);
        this.tracked.child.off('exit', onExit);
      };
      this.on('log', onLog);
      this.tracked.child.once('exit', onExit);
    });
  }

  /** The last warnings and errors (since `from`), so a failed wait says why: a start-up failure names its cause. */
  private recentProblems(from = 0): string {
    const last = this.logs
      .slice(from)
      .filter((e) => e.level === 'warn' || e.level === 'error' || e.level === 'fatal')
      .slice(-4)
      .map((e) => `${e.component ?? '-'}: ${e.msg}${e.err ? ` (${JSON.stringify(e.err)})` : ''}`);
    return `last warnings and errors: ${last.join(' | ') || 'none'}`;
  }

  /** Wait for a supervisor event (spawn, ready, exit, restart-scheduled, hung) of turnserver. */
  waitForEvent(event: string, opts: { from?: number; timeoutMs?: number; component?: string } = {}): Promise<LogEntry> {
    const component = opts.component ?? 'supervisor';
    return this.waitForLog((e) => e.event === event && e.component === component, opts);
  }

  async get(
    pathname: string,
    init: RequestInit = {},
  ): Promise<{ status: number; body: any; text: string; headers: Headers }> {
    const res = await fetch(this.httpUrl + pathname, init);
    const text = await res.text();
    let body: unknown = null;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    return { status: res.status, body, text, headers: res.headers };
  }

  health(): Promise<{ status: number; body: any }> {
    return this.get('/health');
  }

  stunAnswers(timeoutMs = 500): Promise<boolean> {
    return stunProbe('127.0.0.1', this.turnPort, timeoutMs);
  }

  /** Graceful stop through a signal; resolves with the monitor's exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<Exit> {
    if (this.tracked.child.exitCode === null && this.tracked.child.signalCode === null) this.tracked.child.kill(signal);
    return waitExit(this.tracked, timeoutMs);
  }
}

export interface StartMonitorOptions {
  /** Wait for 'turn-monitor is up' (default true). */
  waitReady?: boolean;
  env?: Record<string, string>;
  /** Extra CLI args after `start --config FILE`. */
  args?: string[];
  /** Write this exact object as the config file (skip testConfig defaults). */
  rawConfig?: Record<string, unknown>;
  configFile?: string;
}

/** Write the config file and start `bin/turn-monitor start --config FILE`. */
export async function startMonitor(
  h: Harness,
  overrides: ConfigOverrides = {},
  opts: StartMonitorOptions = {},
): Promise<MonitorProcess> {
  const config = opts.rawConfig ?? (await testConfig(h, overrides));
  const configFile = opts.configFile ?? path.join(h.dir, 'config.json');
  mkdirSync(path.dirname(configFile), { recursive: true });
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const tracked = h.spawn(
    'monitor',
    process.execPath,
    [...monitorNodeArgs, monitorBin, 'start', '--config', configFile, ...(opts.args ?? [])],
    {
      env: { ...process.env, ...monitorEnv, ...opts.env },
    },
  );
  tracked.child.stdout?.setEncoding('utf8');
  const monitor = new MonitorProcess(tracked, config, configFile);
  if (opts.waitReady ?? true) {
    await monitor.waitForLog((e) => e.event === 'started', { timeoutMs: 20_000 });
  }
  return monitor;
}

/** After a SIGKILLed monitor: stop the children it left (turnserver, private Redis) by their pidfiles. */
export async function killOrphans(m: MonitorProcess): Promise<void> {
  for (const name of readdirSync(m.dataDir).filter((n) => n.endsWith('.pid'))) {
    const pid = Number(readFileSync(path.join(m.dataDir, name), 'utf8').trim());
    if (pid > 0 && isAlive(pid)) await killPid(pid);
  }
}
