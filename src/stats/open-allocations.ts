import type { AllocationRecord } from './allocation-record.js';

const RECENTLY_CLOSED = 20_000;

/**
 * The open records by (turnserver run, allocation id), and the keys of the last RECENTLY_CLOSED
 * ones closed: late events of an allocation already closed (the other source lagging) must not
 * reopen it.
 */
export class OpenAllocations {
  // run → allocation id → record: two lookups are cheaper than building a compound key per event.
  private readonly byRun = new Map<string, Map<string, AllocationRecord>>();
  private readonly closed = new Set<string>();
  private readonly closedRing: (string | undefined)[] = new Array(RECENTLY_CLOSED);
  private closedNext = 0;

  get(run: string, allocationId: string): AllocationRecord | undefined {
    return this.byRun.get(run)?.get(allocationId);
  }

  add(r: AllocationRecord): void {
    let byId = this.byRun.get(r.run);
    if (!byId) this.byRun.set(r.run, (byId = new Map()));
    byId.set(r.allocationId, r);
  }

  /** Take a closed record out; `remember`: ignore its late events from now on (wasClosed). */
  remove(r: AllocationRecord, remember: boolean): void {
    this.byRun.get(r.run)?.delete(r.allocationId);
    if (remember) this.rememberClosed(`${r.run}\u0000${r.allocationId}`);
  }

  wasClosed(run: string, allocationId: string): boolean {
    return this.closed.size > 0 && this.closed.has(`${run}\u0000${allocationId}`);
  }

  /** The open records of one run (live: remove() during the iteration is safe). */
  ofRun(run: string): Iterable<AllocationRecord> {
    return this.byRun.get(run)?.values() ?? [];
  }

  dropRun(run: string): void {
    this.byRun.delete(run);
  }

  *[Symbol.iterator](): Generator<AllocationRecord> {
    for (const byId of this.byRun.values()) yield* byId.values();
  }

  private rememberClosed(key: string): void {
    const old = this.closedRing[this.closedNext];
    if (old !== undefined) this.closed.delete(old);
    this.closedRing[this.closedNext] = key;
    this.closedNext = (this.closedNext + 1) % RECENTLY_CLOSED;
    this.closed.add(key);
  }
}
