import type { AllocationRecord } from './allocation-record.js';

/** The records changed since they were last handed to the store, and which of them to write when. */
export class PendingWrites {
  private readonly records = new Set<AllocationRecord>();
  private urgent = false;

  get size(): number {
    return this.records.size;
  }

  /** Whether a record is waiting that any flush writes (a new or a closed one), not only a checkpoint. */
  get hasUrgent(): boolean {
    return this.urgent;
  }

  add(r: AllocationRecord): void {
    // Checked on every add: an open record already pending may have just been closed.
    if (r.endedAt !== null || !r.persisted) this.urgent = true;
    if (r.pendingWrite) return;
    r.pendingWrite = true;
    this.records.add(r);
  }

  /**
   * Records to write now: new and closed ones always (so a record exists, and is final, within
   * one flush), and changed open ones only when `checkpoint` is set. Rewriting every open
   * allocation on every flush would cost one SQLite upsert per event on a busy host; once a
   * checkpoint interval (stats.checkpointMs) bounds what a SIGKILL can lose.
   */
  drain(checkpoint: boolean): AllocationRecord[] {
    this.urgent = false; // every drain takes all new and closed records
    if (this.records.size === 0) return [];
    const out: AllocationRecord[] = [];
    for (const r of this.records) {
      if (checkpoint || r.endedAt !== null || !r.persisted) {
        out.push(r);
        r.persisted = true;
        r.pendingWrite = false;
        this.records.delete(r);
      }
    }
    return out;
  }
}
