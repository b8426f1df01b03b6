import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { Subsystem, SubsystemHealth, TurnConfContributor } from '../lifecycle.js';
import { findProcesses, isAlive, readCmdline } from '../process/pids.js';
import { FileFollower, type FilePosition } from '../process/file-follower.js';
import { forward } from '../process/forward.js';
import { ManagedChild, type ChildExit, type ChildRun, type ManagedChildEvents } from '../process/managed-child.js';
import { renderTurnConf, turnPaths, writeTurnConf } from './render-conf.js';
import { tlsStunProbe } from '../tls/tls-probe.js';
import { probeHost, StunProber } from './stun-probe.js';
import { parseTurnLogLine, startupFailure } from './turn-log.js';

export type { ChildExit, ChildRun, FilePosition };

/** A turnserver exit, and whether the monitor caused it (a stop or a drain-restart) or it crashed. */
export interface TurnserverExit extends ChildExit {
  planned: boolean;
}

export interface TurnserverEvents extends ManagedChildEvents {
  /** Every raw line turnserver logs, once and in order, with the log position just after it. */
  line: [string, FilePosition];
  exit: [TurnserverExit];
}

/** Where to resume reading turnserver's log when its run is adopted (the stats store's committed position). */
export interface LogResume extends FilePosition {
  run: string;
}

const FORWARDED = ['spawn', 'adopted', 'ready', 'restart-scheduled', 'hung', 'state'] as const;

/**
 * Keeps coturn's turnserver running as our child. Re-renders turnserver.conf before every spawn
 * (so contributors such as the private Redis can change it), pipes its log into ours, and
 * forwards the child's lifecycle events.
 */
export class TurnserverSupervisor extends EventEmitter<TurnserverEvents> implements Subsystem {
  readonly name = 'turnserver';
  private readonly contributors: TurnConfContributor[] = [];
  private readonly child: ManagedChild;
  private readonly follower: FileFollower;
  private logResume: LogResume | null = null;
  /** The adopted turnserver runs with a conf other than the one we would render now. */
  configStale = false;
  private readonly tlsPort: number | null;
  /** A stop or a recycle was asked for: the next exit is planned. */
  private exitPlanned = false;
  /** Our STUN probe, sent from one address: the stats side leaves its coturn sessions out (OwnProbes). */
  readonly probes: StunProber;

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
    const supervisorLog = logger.child({ component: 'supervisor' });
    const host = probeHost(t.listeningIp);
    this.probes = new StunProber(host, t.listeningPort);
    this.follower = new FileFollower({
      path: paths.log,
      maxBytes: t.logMaxBytes,
      reopen: () => this.signal('SIGHUP'),
      onNotice: (event, detail) =>
        supervisorLog[event === 'log-rotated' ? 'info' : 'warn']({ event, ...detail }, `turnserver log: ${event}`),
      onLine: (line, position) => {
        this.emit('line', line, position);
        const failure = startupFailure(line);
        if (failure) this.child.startupFailed(failure);
        if (line.trim() === '' || /^\s*\d+:\s*:?\s*$/.test(line)) return;
        const { level, text } = parseTurnLogLine(line);
        turnLog[level](text);
      },
    });
    this.child = new ManagedChild({
      name: 'turnserver',
      logger: supervisorLog,
      spawnSpec: async () => {
        await mkdir(config.dataDir, { recursive: true });
        const conf = await writeTurnConf(config, this.confLines());
        // From the end of what is there: a new turnserver's first line is the first one read.
        this.follower.start();
        this.configStale = false;
        return {
          file: t.bin,
          args: ['-c', conf, `--log-file=${paths.log}`, '--simple-log', '--pidfile', paths.pidfile],
          cwd: config.dataDir,
        };
      },
      probe: (timeoutMs = t.probeTimeoutMs) => this.probe(host, timeoutMs),
      findOrphans: () => findTurnOrphans(paths.conf, paths.pidfile),
      adopt: true,
      // turnserver logs to its file: no pipe to us that would break when we exit.
      output: 'ignore',
      onLine: () => undefined,
      restartDelayMs: t.restartDelayMs,
      maxRestartDelayMs: t.maxRestartDelayMs,
      stopTimeoutMs: t.stopTimeoutMs,
      probeIntervalMs: t.probeIntervalMs,
      readyTimeoutMs: t.readyTimeoutMs,
    });
    // Adopted: resume the log where the committed usage ends (same run), else at its end.
    this.child.on('adopted', (run) => {
      const resume = this.logResume?.run === run.runId ? this.logResume : null;
      this.follower.start(resume, true);
    });
    for (const event of FORWARDED) forward(this.child, this, event);
    // Its last lines come before its exit: the run is closed only after they were read.
    this.child.on('exit', (exit) => {
      this.follower.drain();
      const planned = this.exitPlanned;
      this.exitPlanned = false;
      this.emit('exit', { ...exit, planned });
    });
  }

  /**
   * Serving = a STUN Binding answered over UDP on the listening port and, with TLS on, over TLS
   * on the TLS port too: turnserver starts without its TLS listener when it dislikes the
   * certificate, and that must fail start-up (and liveness), not downgrade silently.
   */
  private async probe(host: string, timeoutMs: number): Promise<boolean> {
    const udp = this.probes.probe(timeoutMs);
    if (this.tlsPort === null) return udp;
    const tlsProbe = tlsStunProbe(host, this.tlsPort, timeoutMs, (local) => this.probes.noteAddress(local));
    const [u, t] = await Promise.all([udp, tlsProbe]);
    return u && t.ok;
  }

  /**
   * Have turnserver reload its certificate and key (coturn 4.6.1: SIGUSR2; allocations are kept).
   * Only a serving child is signalled: before its handlers are set, SIGUSR2 would kill it (and a
   * child that is starting reads the files anyway). Never SIGUSR1: that kills 4.6.1 outright.
   */
  signalTlsReload(): boolean {
    if (this.pid === null || !this.isReady) return false;
    this.signal('SIGUSR2');
    return true;
  }

  private confLines(purpose: 'spawn' | 'compare' = 'spawn'): string[] {
    return this.contributors.flatMap((c) => c.turnConfLines(purpose));
  }

  /** Compare the adopted turnserver's conf (the file it was started with) with what we would render now. */
  private async checkConf(): Promise<void> {
    const file = turnPaths(this.config).conf;
    try {
      const [running, wanted] = await Promise.all([
        readFile(file, 'utf8'),
        renderTurnConf(this.config, this.confLines('compare')),
      ]);
      this.configStale = comparable(running) !== comparable(wanted);
    } catch {
      this.configStale = true;
    }
  }

  private signal(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    try {
      if (pid) process.kill(pid, sig);
    } catch {
      /* gone: its successor opens the path anew */
    }
  }

  /** Where the log is resumed if the run found serving at start-up is this one (set before start). */
  setLogResume(resume: LogResume | null): void {
    this.logResume = resume;
  }

  async start(): Promise<void> {
    await this.child.start();
    if (this.child.adopted) await this.checkConf();
  }
  async stop(): Promise<void> {
    this.exitPlanned = true;
    await this.child.stop();
    this.follower.stop();
    this.probes.close();
  }
  /** Handover: stop reading and watching, leave turnserver serving for the next monitor. */
  release(): Promise<void> {
    this.child.release();
    this.follower.stop();
    this.probes.close();
    return Promise.resolve();
  }
  /** Restart turnserver with the conf rendered now (a drain-restart); resolves once the new one serves. */
  recycle(): Promise<void> {
    const serving = new Promise<void>((resolve) => this.child.once('ready', () => resolve()));
    this.exitPlanned = true;
    this.child.recycle();
    return serving;
  }
  get adopted(): boolean {
    return this.child.adopted;
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
      adopted: this.adopted,
      configStale: this.configStale,
      restarts: this.restarts,
      lastExit: lastExit && { code: lastExit.code, signal: lastExit.signal, at: lastExit.at.toISOString() },
      lastProbeOkAt: lastProbeOkAt?.toISOString() ?? null,
      // Where the STUN probe comes from: its coturn sessions (in turnserver's log) are not usage.
      probeFrom: this.probes.address,
    };
  }
}

/** turnserver processes started with our rendered conf, from the pidfile or from /proc. */
function findTurnOrphans(confPath: string, pidfile: string): number[] {
  const ours = (argv: string[] | null) =>
    !!argv && argv.some((a) => a.includes('turnserver')) && argv.includes(confPath);
  const pids = new Set(findProcesses(ours));
  try {
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    if (pid > 0 && isAlive(pid) && ours(readCmdline(pid))) pids.add(pid);
  } catch {
    /* no pidfile */
  }
  return [...pids];
}

/** A rendered conf without what is made anew for every start (the admin CLI's password): what a config change shows in. */
function comparable(conf: string): string {
  return conf.replace(/^cli-password=.*$/m, '');
}
