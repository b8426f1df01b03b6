import type { ChildRun, ManagedChildOptions } from './child-types.js';

// Readiness: turnserver answers STUN soon after spawn (README, Performance: recovery). One
// readiness probe lasts READY_PROBE_MS and resends within it (stunProbe), with READY_PROBE_GAP_MS
// between probes, so a child that starts answering is noticed within about one resend. Liveness
// probes keep probeIntervalMs.
const READY_PROBE_MS = 80;
const READY_PROBE_GAP_MS = 10;

/** What ChildProbe asks of, and reports to, the ManagedChild whose runs it probes. */
export interface ProbedChild {
  /** Probing the run still matters: it is the current one and no stop is under way. */
  watching(run: ChildRun): boolean;
  /** The run is a spawned child of ours, watched, not exited and not serving yet. */
  starting(run: ChildRun): boolean;
  /** The starting run answered its probe. */
  ready(run: ChildRun): void;
  /** readyTimeoutMs have passed since the run was spawned (it may be serving by now). */
  readyTimeout(run: ChildRun): void;
  /** maxProbeMisses liveness probes in a row went unanswered. */
  hung(run: ChildRun): void;
}

type ProbeOptions = Pick<
  ManagedChildOptions,
  'name' | 'logger' | 'probe' | 'probeIntervalMs' | 'readyTimeoutMs' | 'maxProbeMisses'
>;

/** The readiness probe of a starting run and the liveness probe of a serving one, with their timers. */
export class ChildProbe {
  private probeTimer: NodeJS.Timeout | null = null;
  private readyDeadline: NodeJS.Timeout | null = null;
  private misses = 0;
  lastOkAt: Date | null = null;

  constructor(
    private readonly opts: ProbeOptions,
    private readonly child: ProbedChild,
  ) {}

  /** A new run: its liveness misses count from zero. */
  reset(): void {
    this.misses = 0;
  }

  /** A run was spawned: probe it until it answers, with a deadline of readyTimeoutMs. */
  awaitReady(run: ChildRun): void {
    this.readyDeadline = setTimeout(() => {
      this.readyDeadline = null;
      this.child.readyTimeout(run);
    }, this.opts.readyTimeoutMs);
    void this.probeUntilReady(run);
  }

  /** The run serves (it answered, or was adopted serving): the start-up deadline is off. */
  served(): void {
    this.clearReadyDeadline();
    this.lastOkAt = new Date();
  }

  /** Probe the serving run every probeIntervalMs while it is watched; hung after maxProbeMisses. */
  watchLiveness(run: ChildRun): void {
    this.probeTimer = setTimeout(async () => {
      this.probeTimer = null;
      if (!this.child.watching(run)) return;
      const ok = await this.opts.probe();
      if (!this.child.watching(run)) return;
      if (ok) {
        this.misses = 0;
        this.lastOkAt = new Date();
      } else if (++this.misses >= (this.opts.maxProbeMisses ?? 3)) {
        this.opts.logger.error(
          { event: 'hung', childPid: run.pid, misses: this.misses },
          `${this.opts.name} stopped answering: killing it`,
        );
        this.child.hung(run);
        return;
      } else {
        this.opts.logger.warn(
          { event: 'probe-miss', childPid: run.pid, misses: this.misses },
          `${this.opts.name} missed a liveness probe`,
        );
      }
      this.watchLiveness(run);
    }, this.opts.probeIntervalMs);
  }

  /** Cancel the deadline and the next liveness probe (one under way finds its run no longer watched). */
  clear(): void {
    this.clearReadyDeadline();
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }

  private clearReadyDeadline(): void {
    if (this.readyDeadline) clearTimeout(this.readyDeadline);
    this.readyDeadline = null;
  }

  private async probeUntilReady(run: ChildRun): Promise<void> {
    while (this.child.starting(run)) {
      // Short probes while starting: a child that just bound its port answers the next one.
      if (await this.opts.probe(READY_PROBE_MS)) {
        if (this.child.starting(run)) this.child.ready(run);
        return;
      }
      await new Promise((r) => setTimeout(r, READY_PROBE_GAP_MS));
    }
  }
}
