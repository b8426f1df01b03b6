/** The longest events wait for an ingest burst to end. */
const HOLD_MAX_MS = 1000;
/** Rows the triggers' queue grows by between two looks (100 ms) that make a burst: 1,000 allocations a second. */
const BURST_ROWS = 200;
/** How long a burst seen in the queue holds after that look. */
const QUEUE_BURST_MS = 250;

/**
 * Whether deliveries wait for an ingest burst to end (every client reconnecting after a
 * restart): while the monitor's event loop is saturated (told by the monitor) or the triggers'
 * queue grows by a burst's worth between two looks (seen here, earlier than the first), for a
 * second at most. Ingest has the machine to itself meanwhile; deliveries catch up after.
 */
export class BurstGate {
  private loopBusy = false;
  private queueBurstUntil = 0;
  private heldSince: number | null = null;
  private lastRows = 0;

  /** The monitor's event loop is saturated, or not any more. */
  setBusy(busy: boolean): void {
    this.loopBusy = busy;
  }

  /** At every look: how many rows wait in the triggers' queue. */
  sawQueue(rows: number, now: number): void {
    if (rows - this.lastRows >= BURST_ROWS) this.queueBurstUntil = now + QUEUE_BURST_MS;
    this.lastRows = rows;
  }

  held(now: number): boolean {
    if (!this.loopBusy && now >= this.queueBurstUntil) {
      this.heldSince = null;
      return false;
    }
    this.heldSince ??= now;
    return now - this.heldSince < HOLD_MAX_MS;
  }
}
