import { EventEmitter } from 'node:events';
import type { Logger } from '../log/logger.js';

/**
 * What turnserver itself must do for a drain. Implemented over coturn's admin channel (CLI):
 * on coturn with its own drain (>= 4.6.3) the `drain` command, on 4.6.1 `cc total-quota 1` (never
 * SIGUSR1 on 4.6.1: it kills it); `cs <id>` cancels a session with exact totals.
 */
export interface DrainControl {
  refuseNewAllocations(): Promise<void>;
  resumeAllocations(): Promise<void>;
  cancel(allocationId: string): Promise<void>;
}

export type DrainThen = 'stop' | 'restart';

export interface DrainStatus {
  since: string;
  deadline: string;
  openAllocations: number;
  then: DrainThen;
}

export interface DrainDeps {
  /** null while no admin channel is available: turnserver then still accepts new allocations. */
  control: DrainControl | null;
  /** Withdraw the host from discovery (true) or publish it again (false). */
  withdraw(held: boolean): Promise<void>;
  /** GET /turncredential answers 503 with Retry-After while paused. */
  pauseCredentials(paused: boolean): void;
  /** Ids of the current turnserver run's open allocations. */
  openAllocations(): string[];
  /** then 'restart': turnserver again with the current conf (resolves once it serves). */
  restartTurnserver(): Promise<void>;
  /** Drain ends when this many allocations (or fewer) are left. */
  minAllocations: number;
  log: Logger;
  now?: () => number;
  pollMs?: number;
  /** How long cancelled allocations get to report their totals (coturn's delete events). */
  cancelGraceMs?: number;
}

export interface DrainOutcome {
  then: DrainThen;
  /** Allocations cancelled at the deadline. */
  cancelled: number;
  /** The drain was called off (POST /drain/cancel): serving again. */
  aborted: boolean;
}

interface Active {
  since: number;
  deadline: number;
  then: DrainThen;
  abort: boolean;
  /** The waiting phase is over: cancelling and stopping can no longer be called off. */
  committed: boolean;
}

/**
 * One drain of this host, whoever asked (signal, POST /drain, `turn-monitor drain`): withdraw from
 * discovery, stop handing out credentials, refuse new allocations, wait for the open ones to end
 * (down to minAllocations) or the deadline, cancel the rest, then stop (the caller stops the app)
 * or restart turnserver and serve again.
 */
export class Drain extends EventEmitter<{ started: [DrainStatus]; progress: [DrainStatus]; finished: [DrainOutcome] }> {
  private active: Active | null = null;
  private readonly now: () => number;

  constructor(private readonly deps: DrainDeps) {
    super();
    this.now = deps.now ?? Date.now;
  }

  get draining(): boolean {
    return this.active !== null;
  }

  status(): DrainStatus | null {
    const a = this.active;
    if (!a) return null;
    return {
      since: new Date(a.since).toISOString(),
      deadline: new Date(a.deadline).toISOString(),
      openAllocations: this.deps.openAllocations().length,
      then: a.then,
    };
  }

  /** Start a drain; rejects when one runs already. Resolves when it is done (or called off). */
  async run(timeoutSec: number, then: DrainThen): Promise<DrainOutcome> {
    if (this.active) throw new Error('a drain is already running');
    const since = this.now();
    const a: Active = { since, deadline: since + timeoutSec * 1000, then, abort: false, committed: false };
    this.active = a;
    const { deps } = this;
    deps.log.info(
      { event: 'drain-started', timeoutSec, then, open: deps.openAllocations().length },
      'draining: no new allocations, waiting for the open ones',
    );
    this.emit('started', this.status()!);
    await deps.withdraw(true);
    deps.pauseCredentials(true);
    if (deps.control) await this.attempt('refuse', () => deps.control!.refuseNewAllocations());
    else
      deps.log.warn(
        { event: 'drain-no-control' },
        'no admin channel: turnserver still accepts new allocations while draining',
      );
    while (!a.abort && deps.openAllocations().length > deps.minAllocations && this.now() < a.deadline) {
      this.emit('progress', this.status()!);
      await this.sleep(deps.pollMs ?? 100);
    }
    if (a.abort) return this.finish(a, { then, cancelled: 0, aborted: true });
    a.committed = true;
    const left = deps.openAllocations();
    if (left.length > 0 && deps.control) {
      deps.log.warn(
        { event: 'drain-cancelling', count: left.length },
        'drain deadline: cancelling the allocations left',
      );
      for (const id of left) await this.attempt('cancel', () => deps.control!.cancel(id));
      const until = this.now() + (deps.cancelGraceMs ?? 5000);
      while (deps.openAllocations().length > 0 && this.now() < until) await this.sleep(deps.pollMs ?? 100);
    }
    const cancelled = deps.control ? left.length : 0;
    if (then === 'restart') {
      await deps.restartTurnserver();
      if (deps.control) await this.attempt('resume', () => deps.control!.resumeAllocations());
      deps.pauseCredentials(false);
      await deps.withdraw(false);
    }
    return this.finish(a, { then, cancelled, aborted: false });
  }

  /** POST /drain/cancel: serve again. False when no drain runs or it is past its deadline. */
  async cancel(): Promise<boolean> {
    const a = this.active;
    if (!a || a.committed || a.abort) return false;
    a.abort = true;
    this.active = null;
    if (this.deps.control) await this.attempt('resume', () => this.deps.control!.resumeAllocations());
    this.deps.pauseCredentials(false);
    await this.deps.withdraw(false);
    this.deps.log.info({ event: 'drain-cancelled' }, 'drain called off: serving again');
    return true;
  }

  private finish(a: Active, outcome: DrainOutcome): DrainOutcome {
    if (this.active === a) this.active = null;
    // Only a drain that had to cut calls is worth an operator's look.
    this.deps.log[outcome.cancelled > 0 ? 'warn' : 'info']({ event: 'drain-finished', ...outcome }, 'drain finished');
    this.emit('finished', outcome);
    return outcome;
  }

  private async attempt(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.deps.log.error(
        { event: 'drain-control-failed', step: what, err: (err as Error).message },
        `drain: ${what} failed`,
      );
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }
}
