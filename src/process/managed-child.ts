import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../log/logger.js';
import { StartupError } from '../lifecycle.js';
import { Backoff } from './backoff.js';
import { killPid, procStartMs } from './pids.js';
import { AdoptedProcess } from './adopted-process.js';
import {
  runIdOf,
  type ChildExit,
  type ChildRun,
  type ChildState,
  type ManagedChildEvents,
  type ManagedChildOptions,
  type SpawnSpec,
} from './child-types.js';

// Readiness: turnserver answers STUN soon after spawn (README, Performance: recovery). One
// readiness probe lasts READY_PROBE_MS and resends every 20 ms (stunProbe), with
// READY_PROBE_GAP_MS between probes, so a child that starts answering is noticed within about one
// resend. Liveness probes keep probeIntervalMs.
const READY_PROBE_MS = 80;
const READY_PROBE_GAP_MS = 10;
/** A restart's spawn spec (the rendered conf) is prepared this long before the restart is due, so the child itself starts on time. */
const PREPARE_LEAD_MS = 50;

export * from './child-types.js';

/**
 * Spawns a native child, knows when it serves (by probing, not by log lines), restarts it after
 * it exits and stops it with SIGTERM→SIGKILL escalation.
 */
export class ManagedChild extends EventEmitter<ManagedChildEvents> {
  private child: ResultPromise | null = null;
  private run: ChildRun | null = null;
  private ready = false;
  private current: ChildState = 'idle';
  private restartTimer: NodeJS.Timeout | null = null;
  private probeTimer: NodeJS.Timeout | null = null;
  private readyDeadline: NodeJS.Timeout | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | null = null;
  private firstStart: { resolve(): void; reject(err: Error): void } | null = null;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private spawnCount = 0;
  private probeMisses = 0;
  private adoptedProcess: AdoptedProcess | null = null;
  lastExit: ChildExit | null = null;
  lastProbeOkAt: Date | null = null;

  constructor(private readonly opts: ManagedChildOptions) {
    super();
    this.backoff = new Backoff(Math.max(opts.restartDelayMs, 100), opts.maxRestartDelayMs);
    this.log = opts.logger;
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
  /** Spawns after the first one. */
  get restarts(): number {
    return Math.max(0, this.spawnCount - 1);
  }
  /** The current process was started by an earlier monitor. */
  get adopted(): boolean {
    return this.adoptedProcess !== null;
  }

  /** Resolves once the first child serves; rejects with StartupError if it never does. */
  async start(): Promise<void> {
    if (this.current !== 'idle') throw new Error(`${this.opts.name} already started`);
    const orphans = this.opts.findOrphans();
    if (this.opts.adopt && orphans.length === 1) {
      if (await this.opts.probe()) return this.adoptPid(orphans[0]);
      this.log.warn(
        { event: 'orphan', orphanPid: orphans[0], why: 'no-answer' },
        `stopping ${this.opts.name} left running by an earlier monitor: it does not answer`,
      );
      await killPid(orphans[0], this.opts.stopTimeoutMs);
    } else {
      for (const pid of orphans) {
        const why = this.opts.adopt ? 'several' : 'not-adoptable';
        this.log.warn(
          { event: 'orphan', orphanPid: pid, why },
          `stopping ${this.opts.name} left running by an earlier monitor`,
        );
        await killPid(pid, this.opts.stopTimeoutMs);
      }
    }
    await new Promise<void>((resolve, reject) => {
      this.firstStart = { resolve, reject };
      void this.spawn();
    });
  }

  /** Watch a serving process an earlier monitor started: it is ours now, though not our child. */
  private adoptPid(pid: number): void {
    this.spawnCount = 1;
    const startedAt = new Date(procStartMs(pid) ?? Date.now());
    const run: ChildRun = { pid, runId: runIdOf(pid), startedAt, adopted: true };
    this.run = run;
    const adopted = new AdoptedProcess(pid, () => {
      if (this.adoptedProcess !== adopted) return;
      this.adoptedProcess = null;
      // Not our child: its exit status is not ours to read.
      this.onExit(run, null, null);
    });
    this.adoptedProcess = adopted;
    this.exited = adopted.exited;
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
    this.restartTimer = null;
    if (this.stopping) return;
    let spec: SpawnSpec;
    try {
      spec = await this.opts.spawnSpec();
    } catch (err) {
      this.failOrRetry(`cannot prepare ${this.opts.name}: ${(err as Error).message}`);
      return;
    }
    if (this.stopping) return;
    const wait = dueAt - Date.now();
    if (wait > 0) {
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (!this.stopping) void this.launch(spec);
      }, wait);
      return;
    }
    await this.launch(spec);
  }

  private async launch(spec: SpawnSpec): Promise<void> {
    this.setState('starting');
    this.ready = false;
    this.probeMisses = 0;
    const output = this.opts.output ?? 'pipe';
    const child = execa(spec.file, spec.args, {
      cwd: spec.cwd,
      reject: false,
      buffer: false,
      stdin: 'ignore',
      stdout: output,
      stderr: output,
      cleanup: true,
      // Own process group: a Ctrl-C or a group signal meant for the monitor must not reach
      // turnserver before the monitor has withdrawn the host from discovery.
      detached: true,
    });
    this.child = child;
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.on('error', (err) =>
      this.log.error({ event: 'spawn-error', err: err.message }, `${this.opts.name} spawn error`),
    );
    if (child.pid === undefined) {
      // The binary is missing or not executable: no 'exit' event comes, execa's promise settles.
      await child.catch(() => undefined);
      this.child = null;
      this.failOrRetry(`cannot spawn ${spec.file} (not found or not executable)`);
      return;
    }
    this.spawnCount++;
    const startedAt = new Date();
    const run: ChildRun = { pid: child.pid, runId: runIdOf(child.pid, startedAt.getTime()), startedAt };
    this.run = run;
    this.pipeLines(child, run);
    child.once('exit', (code, signal) => this.onExit(run, code, signal));
    this.log.info({ event: 'spawn', childPid: run.pid, runId: run.runId }, `${this.opts.name} spawned`);
    this.emit('spawn', run);
    this.readyDeadline = setTimeout(() => this.onReadyTimeout(run), this.opts.readyTimeoutMs);
    void this.probeUntilReady(run);
  }

  private pipeLines(child: ResultPromise, run: ChildRun): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const source = child[stream];
      if (!source) continue;
      createInterface({ input: source, crlfDelay: Infinity }).on('line', (line) => {
        this.opts.onLine(line, stream);
        if (!this.ready && this.firstStart && this.opts.startupFailure) {
          const reason = this.opts.startupFailure(line);
          if (reason && this.run === run) this.abortFirstStart(reason);
        }
      });
    }
  }

  private async probeUntilReady(run: ChildRun): Promise<void> {
    while (this.run === run && !this.ready && !this.stopping && this.child) {
      // Short probes while starting: a child that just bound its port answers the next one.
      if (await this.opts.probe(READY_PROBE_MS)) {
        if (this.run !== run || this.stopping !== null || this.child === null) return;
        this.onReady(run);
        return;
      }
      await new Promise((r) => setTimeout(r, READY_PROBE_GAP_MS));
    }
  }

  private onReady(run: ChildRun): void {
    this.clearReadyDeadline();
    this.ready = true;
    this.lastProbeOkAt = new Date();
    this.backoff.reset();
    this.setState('ready');
    this.log.info(
      { event: 'ready', childPid: run.pid, runId: run.runId, restarts: this.restarts },
      `${this.opts.name} is serving`,
    );
    this.emit('ready', run);
    this.firstStart?.resolve();
    this.firstStart = null;
    this.scheduleLivenessProbe(run);
  }

  private scheduleLivenessProbe(run: ChildRun): void {
    this.probeTimer = setTimeout(async () => {
      this.probeTimer = null;
      if (this.run !== run || this.stopping) return;
      const ok = await this.opts.probe();
      if (this.run !== run || this.stopping) return;
      if (ok) {
        this.probeMisses = 0;
        this.lastProbeOkAt = new Date();
      } else if (++this.probeMisses >= (this.opts.maxProbeMisses ?? 3)) {
        this.log.error(
          { event: 'hung', childPid: run.pid, misses: this.probeMisses },
          `${this.opts.name} stopped answering: killing it`,
        );
        this.emit('hung', run);
        // A hung (or SIGSTOPped) child will not act on SIGTERM: kill it outright.
        this.killChild('SIGKILL');
        return;
      } else {
        this.log.warn(
          { event: 'probe-miss', childPid: run.pid, misses: this.probeMisses },
          `${this.opts.name} missed a liveness probe`,
        );
      }
      this.scheduleLivenessProbe(run);
    }, this.opts.probeIntervalMs);
  }

  private onReadyTimeout(run: ChildRun): void {
    this.readyDeadline = null;
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
    this.scheduleRestart(this.backoff.next());
  }

  private onExit(run: ChildRun, code: number | null, signal: string | null): void {
    const exit: ChildExit = { pid: run.pid, runId: run.runId, code, signal, at: new Date(), wasReady: this.ready };
    this.lastExit = exit;
    this.child = null;
    this.ready = false;
    this.clearTimers();
    const expected = this.stopping !== null;
    this.log[expected ? 'info' : 'error'](
      { event: 'exit', childPid: run.pid, runId: run.runId, code, signal, wasReady: exit.wasReady },
      `${this.opts.name} exited${expected ? '' : ' unexpectedly'}`,
    );
    this.emit('exit', exit);
    if (expected) return;
    if (this.firstStart) {
      this.abortFirstStart(`${this.opts.name} exited during start-up (code ${code}, signal ${signal})`);
      return;
    }
    // A child that served gets the fixed delay every time; one that never served backs off.
    this.scheduleRestart(exit.wasReady ? this.opts.restartDelayMs : this.backoff.next(), exit.at.getTime());
  }

  /** Start a new child delayMs after `from` (the exit): its conf is rendered just before. */
  private scheduleRestart(delayMs: number, from = Date.now()): void {
    if (this.stopping) return;
    this.setState('restarting');
    this.log.info({ event: 'restart-scheduled', delayMs }, `restarting ${this.opts.name} in ${delayMs} ms`);
    this.emit('restart-scheduled', { delayMs });
    const dueAt = from + delayMs;
    this.restartTimer = setTimeout(() => void this.spawn(dueAt), Math.max(0, dueAt - PREPARE_LEAD_MS - Date.now()));
  }

  /** Replace the running process (a drain-restart): SIGTERM; the exit path starts a new one restartDelayMs later. */
  recycle(): void {
    if (!this.stopping) this.killChild('SIGTERM');
  }

  /** A line (from wherever the child logs) proves it cannot start: fail start() now. */
  startupFailed(reason: string): void {
    if (!this.ready && this.firstStart && this.run) this.abortFirstStart(reason);
  }

  private killChild(signal: NodeJS.Signals): void {
    try {
      if (this.adoptedProcess) this.adoptedProcess.signal(signal);
      else this.child?.kill(signal);
    } catch {
      /* already gone */
    }
  }

  private async killAndWait(): Promise<void> {
    this.clearTimers();
    if (this.adoptedProcess) return this.adoptedProcess.terminate(this.opts.stopTimeoutMs);
    const child = this.child;
    if (!child || child.pid === undefined) return;
    this.log.info({ event: 'stopping', childPid: child.pid, signal: 'SIGTERM' }, `stopping ${this.opts.name}`);
    this.killChild('SIGTERM');
    const escalate = setTimeout(() => {
      this.log.warn(
        { event: 'kill-escalated', childPid: child.pid },
        `${this.opts.name} ignored SIGTERM: sending SIGKILL`,
      );
      this.killChild('SIGKILL');
    }, this.opts.stopTimeoutMs);
    await this.exited;
    clearTimeout(escalate);
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
    this.adoptedProcess?.release();
    this.child?.removeAllListeners('exit');
    this.log.info({ event: 'released', childPid: this.pid }, `${this.opts.name} left serving for the next monitor`);
    this.setState('stopped');
  }

  /** Forced exit (second signal): SIGKILL the current child at once, synchronously. */
  forceKill(): void {
    this.killChild('SIGKILL');
  }

  private clearReadyDeadline(): void {
    if (this.readyDeadline) clearTimeout(this.readyDeadline);
    this.readyDeadline = null;
  }

  private clearTimers(): void {
    this.clearReadyDeadline();
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.restartTimer = null;
    this.probeTimer = null;
  }
}
