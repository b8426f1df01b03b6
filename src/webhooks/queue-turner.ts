import type { DeliveryStore } from './delivery-store.js';

/**
 * Queue rows made events per transaction: a transaction holds usage.db's write lock well under
 * a millisecond. A pipeline commit that finds the lock taken sleeps 1 ms, then 2, then 5
 * (SQLite's busy handler): short transactions cost it one short sleep.
 */
const BATCH = 25;

/** Turns the triggers' queue into events with their deliveries (delivery thread). */
export class QueueTurner {
  private turning = false;
  private stopped = false;

  constructor(
    private readonly store: DeliveryStore,
    /** Events were made: look for work. */
    private readonly made: () => void,
    private readonly failed: (err: Error) => void,
  ) {}

  /** A batch per transaction; a full batch is followed by the next 2 ms later (the pipeline gets the lock between). */
  turn(): void {
    if (this.turning || this.stopped) return;
    let n: number;
    try {
      n = this.store.expand(BATCH);
    } catch (err) {
      this.failed(err as Error);
      return;
    }
    if (n === 0) return;
    this.made();
    if (n < BATCH) return;
    this.turning = true;
    setTimeout(() => {
      this.turning = false;
      this.turn();
    }, 2);
  }

  stop(): void {
    this.stopped = true;
  }
}
