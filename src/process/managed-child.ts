import { EventEmitter } from 'node:events';
import type { Logger } from '../log/logger.js';
import { StartupError } from '../lifecycle.js';
import { AdoptedProcess } from './adopted-process.js';
import { ChildProbe } from './child-probe.js';
import { settleOrphans } from './orphans.js';
import { RestartTimer } from './restart-timer.js';
import { SpawnedChild } from './spawned-child.js';
import {
  runIdOf,
  type ChildExit,
  type ChildRun,
  type ChildState,
  type ManagedChildEvents,
  type ManagedChildOptions,
  type SpawnSpec,
} from './child-types.js';

export * from './child-types.js';

/**
 * Spawns a native child, knows when it serves (by probing, not by log lines), restarts it after
 * it exits and stops it with SIGTERM→SIGKILL escalation.
 */
export class ManagedChild extends EventEmitter<ManagedChildEvents> {
  /** The process of the current run while it lives: our child, or one an earlier monitor started. */
  private child: SpawnedChild | AdoptedProcess | null = null;
  private run: ChildRun | null = null;
  private ready = false;
  private current: ChildState = 'idle';
  /** recycle() asked for this exit: a planned step, not a crash. */
  private recycling = false;
  private stopping: Promise<void> | null = null;
  private firstStart: { resolve(): void; reject(err: Error): void } | null = null;
  private readonly restart: RestartTimer;
  private readonly log: Logger;
  private readonly probe: ChildProbe;
  private spawnCount = 0;
  lastExit: ChildExit | null = null;

  constructor(private readonly opts: ManagedChildOptions) {
    super();
    this.restart = new RestartTimer(opts.restartDelayMs, opts.maxRestartDelayMs, opts.prepareLeadMs);
    this.log = opts.logger;
    this.probe = new ChildProbe(opts, {
      watching: (run) => this.run === run && !this.stopping,
      starting: (run) => this.run === run && !this.ready && !this.stopping && this.child !== null,
      ready: (run) => this.onReady(run),
      readyTimeout: (run) => this.onReadyTimeout(run),
      hung: (run) => {
        this.emit('hung', run);
        // A hung (or SIGSTOPped) child will not act on SIGTERM: kill it outright.
        this.killChild('SIGKILL');
      },
    });
  }

  get state(): ChildState {
    return this.current;
  }
  get pid(): number | null {
    return this.run?.pid ?? null;
  }
  get runId(): string | null {
    return this.run?.runId ?? null;
  }
  get isReady(): boolean {
    return this.ready;
  }
  get lastProbeOkAt(): Date | null {
    return this.probe.lastOkAt;
  }
  /** Spawns after the first one. */
  get restarts(): number {
    return Math.max(0, this.spawnCount - 1);
  }
  /** The current process was started by an earlier monitor. */
  get adopted(): boolean {
    return this.child instanceof AdoptedProcess;
  }

  /** Resolves once the first child serves; rejects with StartupError if it never does. */
  async start(): Promise<void> {
    if (this.current !== 'idle') throw new Error(`${this.opts.name} already started`);
    const adoptable = await settleOrphans(this.opts);
    if (adoptable !== null) return this.adoptPid(adoptable);
    await new Promise<void>((resolve, reject) => {
      this.firstStart = { resolve, reject };
      void this.spawn();
    });
  }

  /** Watch a serving process an earlier monitor started: it is ours now, though not our child. */
  private adoptPid(pid: number): void {
    this.spawnCount = 1;
    const adopted = new AdoptedProcess(pid, () => {
      if (this.child !== adopted) return;
      this.child = null;
      // Not our child: its exit status is not ours to read.
      this.onExit(adopted.run, null, null);
    });
    const run = adopted.run;
    this.run = run;
    this.child = adopted;
    this.log.info(
      { event: 'adopted', childPid: pid, runId: run.runId },
      `${this.opts.name} left running by an earlier monitor serves: adopted`,
    );
    this.emit('adopted', run);
    this.onReady(run);
  }

  private setState(state: ChildState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }

  /** Prepare the spawn spec, then start the child at dueAt (epoch ms; now when not given). */
  private async spawn(dueAt = 0): Promise<void> {
    if (this.stopping) return;
    let spec: SpawnSpec;
    try {
      spec = await this.opts.spawnSpec();
    } catch (err) {
      this.failOrRetry(`cannot prepare ${this.opts.name}: ${(err as Error).message}`);
      return;
    }
    if (this.stopping) return;
    this.restart.startAt(dueAt, () => {
      if (!this.stopping) void this.launch(spec);
    });
  }

  private async launch(spec: SpawnSpec): Promise<void> {
    this.setState('starting');
    this.ready = false;
    this.probe.reset();
    const child = new SpawnedChild(spec, this.opts.output ?? 'pipe', this.opts.name, this.log);
    this.child = child;
    if (child.pid === undefined) {
      await child.failed();
      this.child = null;
      this.failOrRetry(`cannot spawn ${spec.file} (not found or not executable)`);
      return;
    }
    this.spawnCount++;
    const startedAt = new Date();
    const run: ChildRun = { pid: child.pid, runId: runIdOf(child.pid, startedAt.getTime()), startedAt };
    this.run = run;
    child.onLine((line, stream) => this.onLine(run, line, stream));
    child.onExit((code, signal) => this.onExit(run, code, signal));
    this.log.info({ event: 'spawn', childPid: run.pid, runId: run.runId }, `${this.opts.name} spawned`);
    this.emit('spawn', run);
    this.probe.awaitReady(run);
  }

  private onLine(run: ChildRun, line: string, stream: 'stdout' | 'stderr'): void {
    this.opts.onLine(line, stream);
    if (!this.ready && this.firstStart && this.opts.startupFailure) {
      const reason = this.opts.startupFailure(line);
      if (reason && this.run === run) this.abortFirstStart(reason);
    }
  }

  private onReady(run: ChildRun): void {
    this.probe.served();
    this.ready = true;
    this.restart.served();
    this.setState('ready');
    this.log.info(
      { event: 'ready', childPid: run.pid, runId: run.runId, restarts: this.restarts },
      `${this.opts.name} is serving`,
    );
    this.emit('ready', run);
    this.firstStart?.resolve();
    this.firstStart = null;
    this.probe.watchLiveness(run);
  }

  private onReadyTimeout(run: ChildRun): void {
    if (this.run !== run || this.ready || this.stopping) return;
    const reason = `${this.opts.name} did not answer within ${this.opts.readyTimeoutMs} ms of starting`;
    if (this.firstStart) return this.abortFirstStart(reason);
    this.log.error({ event: 'ready-timeout', childPid: run.pid }, `${reason}: killing it`);
    this.killChild('SIGKILL');
  }

  /** The first child cannot serve: kill it and fail start() instead of restart-looping. */
  private abortFirstStart(reason: string): void {
    const pending = this.firstStart;
    if (!pending) return;
    this.firstStart = null;
    this.setState('failed');
    this.stopping = this.killAndWait();
    void this.stopping.then(() => pending.reject(new StartupError(reason)));
  }

  private failOrRetry(reason: string): void {
    if (this.firstStart) {
      const pending = this.firstStart;
      this.firstStart = null;
      this.setState('failed');
      pending.reject(new StartupError(reason));
      return;
    }
    this.log.error({ event: 'spawn-failed' }, reason);
    this.scheduleRestart(this.restart.nextBackoff());
  }

  private onExit(run: ChildRun, code: number | null, signal: string | null): void {
    const exit: ChildExit = { pid: run.pid, runId: run.runId, code, signal, at: new Date(), wasReady: this.ready };
    this.lastExit = exit;
    this.child = null;
    this.ready = false;
    this.clearTimers();
    const planned = this.stopping !== null || this.recycling;
    this.recycling = false;
    this.log[planned ? 'info' : 'error'](
      { event: 'exit', childPid: run.pid, runId: run.runId, code, signal, wasReady: exit.wasReady },
      `${this.opts.name} exited${planned ? '' : ' unexpectedly'}`,
    );
    this.emit('exit', exit);
    if (this.stopping) return;
    if (this.firstStart) {
      this.abortFirstStart(`${this.opts.name} exited during start-up (code ${code}, signal ${signal})`);
      return;
    }
    // A child that served gets the fixed delay every time; one that never served backs off.
    this.scheduleRestart(exit.wasReady ? this.opts.restartDelayMs : this.restart.nextBackoff(), exit.at.getTime());
  }

  /** Start a new child delayMs after `from` (the exit): its conf is rendered just before. */
  private scheduleRestart(delayMs: number, from = Date.now()): void {
    if (this.stopping) return;
    this.setState('restarting');
    this.log.info({ event: 'restart-scheduled', delayMs }, `restarting ${this.opts.name} in ${delayMs} ms`);
    this.emit('restart-scheduled', { delayMs });
    const dueAt = from + delayMs;
    this.restart.prepareFor(dueAt, () => void this.spawn(dueAt));
  }

  /** Replace the running process (a drain-restart): SIGTERM; the exit path starts a new one restartDelayMs later. */
  recycle(): void {
    if (this.stopping || !this.child) return;
    this.recycling = true;
    this.setState('restarting');
    this.killChild('SIGTERM');
  }

  /** A line (from wherever the child logs) proves it cannot start: fail start() now. */
  startupFailed(reason: string): void {
    if (!this.ready && this.firstStart && this.run) this.abortFirstStart(reason);
  }

  private killChild(signal: NodeJS.Signals): void {
    this.child?.signal(signal);
  }

  private async killAndWait(): Promise<void> {
    this.clearTimers();
    await this.child?.terminate(this.opts.stopTimeoutMs);
  }

  /** Idempotent: SIGTERM, SIGKILL after stopTimeoutMs, resolves after the child exited. */
  stop(): Promise<void> {
    if (!this.stopping) {
      this.setState('stopping');
      this.stopping = this.killAndWait();
    }
    return this.stopping.then(() => {
      this.setState(this.current === 'failed' ? 'failed' : 'stopped');
      this.firstStart?.reject(new StartupError(`${this.opts.name} stopped before it was ready`));
      this.firstStart = null;
    });
  }

  /**
   * Handover: stop watching, leave the process serving (a next monitor adopts it). Idempotent;
   * after it, stop() does nothing.
   */
  release(): void {
    if (this.stopping) return;
    this.stopping = Promise.resolve();
    this.clearTimers();
    this.child?.release();
    this.log.info({ event: 'released', childPid: this.pid }, `${this.opts.name} left serving for the next monitor`);
    this.setState('stopped');
  }

  /** Forced exit (second signal): SIGKILL the current child at once, synchronously. */
  forceKill(): void {
    this.killChild('SIGKILL');
  }

  private clearTimers(): void {
    this.probe.clear();
    this.restart.cancel();
  }
}
