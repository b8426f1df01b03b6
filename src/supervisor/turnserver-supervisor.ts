import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { Subsystem, SubsystemHealth, TurnConfContributor } from '../lifecycle.js';
import { findProcesses, isAlive, readCmdline } from '../process/pids.js';
import { ManagedChild, type ChildExit, type ChildRun, type ManagedChildEvents } from '../process/managed-child.js';
import { turnPaths, writeTurnConf } from './render-conf.js';
import { probeHost, stunProbe } from './stun-probe.js';
import { bindFailure, parseTurnLogLine } from './turn-log.js';

export type { ChildExit, ChildRun };

export interface TurnserverEvents extends ManagedChildEvents {
  /** Every raw line turnserver logs. */
  line: [string];
}

const FORWARDED = ['spawn', 'ready', 'exit', 'restart-scheduled', 'hung', 'state'] as const;

/**
 * Keeps coturn's turnserver running as our child. Re-renders turnserver.conf before every spawn
 * (so contributors such as the private Redis can change it), pipes its log into ours, and
 * forwards the child's lifecycle events.
 */
export class TurnserverSupervisor extends EventEmitter<TurnserverEvents> implements Subsystem {
  readonly name = 'turnserver';
  private readonly contributors: TurnConfContributor[] = [];
  private readonly child: ManagedChild;

  constructor(config: Config, logger: Logger) {
    super();
    const t = config.turnserver;
    const paths = turnPaths(config);
    const turnLog = logger.child({ component: 'turnserver' });
    const host = probeHost(t.listeningIp);
    this.child = new ManagedChild({
      name: 'turnserver',
      logger: logger.child({ component: 'supervisor' }),
      spawnSpec: async () => {
        await mkdir(config.dataDir, { recursive: true });
        const lines = this.contributors.flatMap((c) => c.turnConfLines());
        const conf = await writeTurnConf(config, lines);
        return {
          file: t.bin,
          args: ['-c', conf, '--log-file=stdout', '--simple-log', '--pidfile', paths.pidfile],
          cwd: config.dataDir,
        };
      },
      probe: (timeoutMs = t.probeTimeoutMs) => stunProbe(host, t.listeningPort, timeoutMs),
      findOrphans: () => findTurnOrphans(paths.conf, paths.pidfile),
      onLine: (line) => {
        this.emit('line', line);
        if (line.trim() === '' || /^\s*\d+:\s*:?\s*$/.test(line)) return;
        const { level, text } = parseTurnLogLine(line);
        turnLog[level](text);
      },
      startupFailure: bindFailure,
      restartDelayMs: t.restartDelayMs,
      maxRestartDelayMs: t.maxRestartDelayMs,
      stopTimeoutMs: t.stopTimeoutMs,
      probeIntervalMs: t.probeIntervalMs,
      readyTimeoutMs: t.readyTimeoutMs,
    });
    for (const event of FORWARDED) {
      this.child.on(event, (...args: unknown[]) => (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args));
    }
  }

  start(): Promise<void> {
    return this.child.start();
  }
  stop(): Promise<void> {
    return this.child.stop();
  }
  get isReady(): boolean {
    return this.child.isReady;
  }
  get pid(): number | null {
    return this.child.pid;
  }
  /** Identifies the current child run: allocation ids restart with every run. */
  get runId(): string | null {
    return this.child.runId;
  }
  get restarts(): number {
    return this.child.restarts;
  }
  forceKill(): void {
    this.child.forceKill();
  }

  /** Lines added to the rendered conf at the next spawn (credentials, stats). */
  addContributor(contributor: TurnConfContributor): void {
    this.contributors.push(contributor);
  }

  health(): SubsystemHealth {
    const { lastExit, lastProbeOkAt } = this.child;
    return {
      status: this.isReady ? 'ok' : 'down',
      state: this.child.state,
      pid: this.pid,
      runId: this.runId,
      restarts: this.restarts,
      lastExit: lastExit && { code: lastExit.code, signal: lastExit.signal, at: lastExit.at.toISOString() },
      lastProbeOkAt: lastProbeOkAt?.toISOString() ?? null,
    };
  }
}

/** turnserver processes started with our rendered conf, from the pidfile or from /proc. */
function findTurnOrphans(confPath: string, pidfile: string): number[] {
  const ours = (argv: string[] | null) => !!argv && argv.some((a) => a.includes('turnserver')) && argv.includes(confPath);
  const pids = new Set(findProcesses(ours));
  try {
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    if (pid > 0 && isAlive(pid) && ours(readCmdline(pid))) pids.add(pid);
  } catch {
    /* no pidfile */
  }
  return [...pids];
}

