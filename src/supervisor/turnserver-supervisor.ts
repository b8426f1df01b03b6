import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { Subsystem, SubsystemHealth, TurnConfContributor } from '../lifecycle.js';
import { findProcesses, isAlive, readCmdline } from '../process/pids.js';
import { ManagedChild, type ChildExit, type ChildRun, type ManagedChildEvents } from '../process/managed-child.js';
import { turnPaths, writeTurnConf } from './render-conf.js';
import { tlsStunProbe } from '../tls/tls-probe.js';
import { probeHost, stunProbe } from './stun-probe.js';
import { parseTurnLogLine, startupFailure } from './turn-log.js';

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
  private readonly tlsPort: number | null;

  constructor(
    private readonly config: Config,
    logger: Logger,
  ) {
    super();
    const { cert, key, port } = config.turnserver.tls;
    this.tlsPort = cert !== null && key !== null ? port : null;
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
      probe: (timeoutMs = t.probeTimeoutMs) => this.probe(host, timeoutMs),
      findOrphans: () => findTurnOrphans(paths.conf, paths.pidfile),
      onLine: (line) => {
        this.emit('line', line);
        if (line.trim() === '' || /^\s*\d+:\s*:?\s*$/.test(line)) return;
        const { level, text } = parseTurnLogLine(line);
        turnLog[level](text);
      },
      startupFailure,
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

  /**
   * Serving = a STUN Binding answered over UDP on the listening port and, with TLS on, over TLS
   * on the TLS port too: turnserver starts without its TLS listener when it dislikes the
   * certificate, and that must fail start-up (and liveness), not downgrade silently.
   */
  private async probe(host: string, timeoutMs: number): Promise<boolean> {
    const udp = stunProbe(host, this.config.turnserver.listeningPort, timeoutMs);
    if (this.tlsPort === null) return udp;
    const [u, t] = await Promise.all([udp, tlsStunProbe(host, this.tlsPort, timeoutMs)]);
    return u && t.ok;
  }

  /**
   * Have turnserver reload its certificate and key (coturn 4.6.1: SIGUSR2; allocations are kept).
   * Only a serving child is signalled: before its handlers are set, SIGUSR2 would kill it (and a
   * child that is starting reads the files anyway). Never SIGUSR1: that kills 4.6.1 outright.
   */
  signalTlsReload(): boolean {
    const pid = this.pid;
    if (pid === null || !this.isReady) return false;
    try {
      process.kill(pid, 'SIGUSR2');
      return true;
    } catch {
      return false;
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

