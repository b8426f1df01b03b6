import type { UsageEvent, UsageSource } from './events.js';
import {
  addAltIncrement,
  applyClosed,
  applyStatus,
  countersOf,
  newRecord,
  zero,
  type AllocationRecord,
  type Counters,
} from './allocation-record.js';
import { OpenAllocations } from './open-allocations.js';
import { PendingWrites } from './pending-writes.js';

export interface ModelHooks {
  /** Called for each traffic increment of the primary source (metrics): its byte counts. */
  onIncrement?(peer: boolean, rcvb: number, sentb: number): void;
  /** 'both' mode: the two sources' totals of a closed allocation differ. */
  onDisagreement?(r: AllocationRecord): void;
  /** 'both' mode: the primary source missed the end, the secondary's totals were used. */
  onFilled?(r: AllocationRecord): void;
  /** The primary source reported a new allocation (its `new` status). */
  onNew?(r: AllocationRecord): void;
}

export interface ModelOptions {
  deleteGraceMs: number;
  /** Whose increments and totals count: 'redis' (default) or 'log'. */
  primary?: UsageSource;
  /** A second source feeds the alt sums (stats.source 'both'). */
  secondary?: UsageSource | null;
}

/**
 * The allocation model: consumes UsageEvents (from any source) and keeps open allocations keyed
 * by (turnserver run, allocation id). It never adds `traffic` to `total_traffic`: increments
 * are summed while the allocation lives, and the totals replace the sums when they come.
 * Changed records are collected for the store (drainDirty); closed ones then leave memory.
 */
export class AllocationModel {
  private readonly open = new OpenAllocations();
  private readonly writes = new PendingWrites();
  private readonly deleteGraceMs: number;
  private readonly primary: UsageSource;
  private readonly secondary: UsageSource | null;

  constructor(
    options: ModelOptions,
    private readonly hooks: ModelHooks = {},
  ) {
    this.deleteGraceMs = options.deleteGraceMs;
    this.primary = options.primary ?? 'redis';
    this.secondary = options.secondary ?? null;
  }

  get openCount(): number {
    let n = 0;
    for (const r of this.open) if (r.kind === 'allocation') n++;
    return n;
  }

  /** The open record of an allocation of a run, if any. */
  find(run: string, allocationId: string): AllocationRecord | null {
    return this.open.get(run, allocationId) ?? null;
  }

  openRecords(): AllocationRecord[] {
    return [...this.open].filter((r) => r.kind === 'allocation');
  }

  /** Carry on with records checkpointed by an earlier monitor (its turnserver run was adopted). */
  restore(records: AllocationRecord[]): void {
    for (const r of records) this.open.add(r);
  }

  /** Apply one event of the given turnserver run; returns the record it went to (null: ignored). */
  ingest(e: UsageEvent, run: string): AllocationRecord | null {
    let r = this.open.get(run, e.allocationId);
    if (!r) {
      if (this.open.wasClosed(run, e.allocationId)) return null;
      r = newRecord(e, run, this.primary);
      this.open.add(r);
    }
    r.lastEventAt = e.at;
    switch (e.kind) {
      case 'status':
        applyStatus(r, e, this.primary);
        break;
      case 'traffic':
      case 'traffic/peer':
        if (e.source === this.primary)
          this.addIncrement(r, e.kind === 'traffic/peer', e.rcvp, e.rcvb, e.sentp, e.sentb, e.at);
        else addAltIncrement(r, e);
        break;
      case 'total_traffic':
        r.totalClient = countersOf(e);
        break;
      case 'total_traffic/peer':
        r.totalPeer = countersOf(e);
        break;
      case 'closed':
        applyClosed(r, e);
        break;
    }
    this.writes.add(r);
    if (r.deletedAt !== null && this.endComplete(r)) this.close(r, r.deletedAt, r.pendingReason ?? 'deleted');
    else if (e.kind === 'status' && e.status === 'new' && e.source === this.primary) this.hooks.onNew?.(r);
    return r;
  }

  /**
   * A `traffic` (or `traffic/peer`) increment of the primary source onto an open record: the hot
   * path, which the Redis source calls directly for allocations it has seen before.
   */
  addIncrement(
    r: AllocationRecord,
    peer: boolean,
    rcvp: number,
    rcvb: number,
    sentp: number,
    sentb: number,
    at: number,
  ): void {
    const target = peer ? r.peer : r.client;
    target[0] += rcvp;
    target[1] += rcvb;
    target[2] += sentp;
    target[3] += sentb;
    r.lastEventAt = at;
    this.writes.add(r);
    this.hooks.onIncrement?.(peer, rcvb, sentb);
  }

  /** Close an open record now: the pipeline knows a never-allocated session is over (unattributed.ts). */
  closeNow(r: AllocationRecord, at: number, reason: string): void {
    if (r.endedAt === null) this.close(r, at, reason);
  }

  /** Everything the end of an allocation brings has arrived. */
  private endComplete(r: AllocationRecord): boolean {
    // The log reports its last usage lines before `delete:`, so a log delete is final.
    const primaryDone =
      this.primary === 'log' ? r.deletedBy.includes('log') : r.totalClient !== null && r.totalPeer !== null;
    return primaryDone && (this.secondary === null || r.deletedBy.includes(this.secondary));
  }

  private close(r: AllocationRecord, at: number, reason: string, complete = r.complete): void {
    r.endedAt = at;
    r.endReason = reason;
    r.complete = complete;
    if (this.secondary && r.deletedAt !== null) this.reconcile(r);
    this.writes.add(r);
    // Only two sources can deliver events after the close (the slower one lagging behind).
    this.open.remove(r, this.secondary !== null);
  }

  /** 'both' mode: compare the two sources' totals; fill from the secondary what the primary missed. */
  private reconcile(r: AllocationRecord): void {
    const alt = { client: r.altClient ?? zero(), peer: r.altPeer ?? zero() };
    const primaryWhole = r.complete && r.totalClient !== null && r.totalPeer !== null;
    if (!primaryWhole) {
      if (r.deletedBy.includes(this.secondary!) && r.altSawNew) {
        r.totalClient = alt.client;
        r.totalPeer = alt.peer;
        r.complete = true;
        this.hooks.onFilled?.(r);
      }
      return;
    }
    const same = (a: Counters, b: Counters) => a.every((v, i) => v === b[i]);
    if (!same(r.totalClient!, alt.client) || !same(r.totalPeer!, alt.peer)) this.hooks.onDisagreement?.(r);
  }

  /**
   * Time-driven work: a deleted allocation whose totals never came closes with its sums after
   * the grace; unattributed traffic idle for a while is flushed and forgotten.
   */
  tick(now: number, unattributedIdleMs = 120_000): void {
    for (const r of this.open) {
      if (r.deletedAt !== null && now - r.deletedAt >= this.deleteGraceMs)
        this.close(r, r.deletedAt, r.pendingReason ?? 'deleted');
      else if (r.kind === 'unattributed' && now - r.lastEventAt >= unattributedIdleMs)
        this.close(r, r.lastEventAt, 'idle');
    }
  }

  /** Changed records not written yet (open ones wait for a checkpoint). */
  get dirtyCount(): number {
    return this.writes.size;
  }

  /** Whether a new or closed record waits to be written (any flush writes it, not only a checkpoint). */
  get hasUrgentWrites(): boolean {
    return this.writes.hasUrgent;
  }

  /** Whether tick() has anything to time out: a deleted allocation or unattributed traffic. */
  hasTimedWork(): boolean {
    for (const r of this.open) if (r.deletedAt !== null || r.kind === 'unattributed') return true;
    return false;
  }

  /** The turnserver run ended (any reason): close what it left open with what we have seen. */
  closeRun(run: string, at: number, reason: string): number {
    let n = 0;
    for (const r of this.open.ofRun(run)) {
      // A deleted allocation still waiting for its totals closes normally with its sums.
      if (r.deletedAt !== null) this.close(r, r.deletedAt, r.pendingReason ?? 'deleted');
      else {
        this.close(r, at, reason, false);
        n++;
      }
    }
    this.open.dropRun(run);
    return n;
  }

  /**
   * Open allocations of the run that coturn no longer has (`live`: its `ps`): they ended while
   * nobody listened. Closed at their last checkpointed event, incomplete; returns how many.
   */
  closeUnlisted(run: string, live: ReadonlySet<string>, reason: string): number {
    let n = 0;
    for (const r of [...this.open.ofRun(run)]) {
      if (r.kind !== 'allocation' || live.has(r.allocationId) || r.deletedAt !== null) continue;
      this.close(r, r.lastEventAt, reason, false);
      n++;
    }
    return n;
  }

  /** Events may have been lost (source outage): every open record is possibly incomplete. */
  markGap(): void {
    for (const r of this.open) {
      r.complete = false;
      r.gap = true;
      this.writes.add(r);
    }
  }

  /** Records to write now (PendingWrites.drain): changed open ones only at a checkpoint. */
  drainDirty(checkpoint = true): AllocationRecord[] {
    return this.writes.drain(checkpoint);
  }
}
