import { Backoff } from './backoff.js';

/** By default a restart's spawn spec (the rendered conf) is prepared this long before the restart is due, so the child itself starts on time. */
const PREPARE_LEAD_MS = 50;

/** The one pending start of a next child, and the backoff for children that never served. */
export class RestartTimer {
  private readonly backoff: Backoff;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    restartDelayMs: number,
    maxRestartDelayMs: number,
    private readonly prepareLeadMs = PREPARE_LEAD_MS,
  ) {
    this.backoff = new Backoff(Math.max(restartDelayMs, 100), maxRestartDelayMs);
  }

  /** The next backoff step: a child that never served (or was never spawned) waits longer each time. */
  nextBackoff(): number {
    return this.backoff.next();
  }

  /** A child serves: the backoff starts over. */
  served(): void {
    this.backoff.reset();
  }

  /** Call prepare() shortly before dueAt (epoch ms): from a timer, even when that has passed. */
  prepareFor(dueAt: number, prepare: () => void): void {
    this.after(Math.max(0, dueAt - this.prepareLeadMs - Date.now()), prepare);
  }

  /** Call start() at dueAt (epoch ms): right away when that has passed. */
  startAt(dueAt: number, start: () => void): void {
    const wait = dueAt - Date.now();
    if (wait > 0) this.after(wait, start);
    else start();
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private after(ms: number, fn: () => void): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      fn();
    }, ms);
  }
}
