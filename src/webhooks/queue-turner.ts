import type { DeliveryStore } from './delivery-store.js';

/**
 * Queue rows made events per transaction: a transaction holds usage.db's write lock well under
 * a millisecond. A pipeline commit that finds the lock taken sleeps 1 ms, then 2, then 5
 * (SQLite's busy handler): short transactions cost it one short sleep.
 */
const BATCH = 25;
/**
 * A burst: more than this many rows in the triggers' queue, more than at the last look. Events
 * are then made (and sent) once the burst is over, or its oldest row waited BURST_HOLD_MS: a
 * host ingesting far above its usual rate (every client reconnecting after a restart) has the
 * machine to itself meanwhile. 500 rows in a 100 ms tick is 2,500 allocations a second.
 */
const BURST_ROWS = 500;
const BURST_HOLD_MS = 1000;

/** Turns the triggers' queue into events with their deliveries (delivery thread), between ingest bursts. */
export class QueueTurner {
  private turning = false;
  private lastRows = 0;
  private stopped = false;

  constructor(
    private readonly store: DeliveryStore,
    /** Events were made: look for work. */
    private readonly made: () => void,
    private readonly failed: (err: Error) => void,
  ) {}

  /** At every look: make events now, unless an ingest burst is under way. */
  tick(now: number): void {
    if (this.burstOver(now)) this.turn();
  }

  private burstOver(now: number): boolean {
    const q = this.store.waiting();
    const rows = q?.rows ?? 0;
    const growing = rows > this.lastRows;
    this.lastRows = rows;
    return q === null || rows <= BURST_ROWS || !growing || now - q.oldestAt >= BURST_HOLD_MS;
  }

  /** A batch per transaction; a full batch is followed by the next 2 ms later (the pipeline gets the lock between). */
  private turn(): void {
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
