import type { ClosedEvent, StatusEvent, TrafficEvent, UsageEvent, UsageSource } from './events.js';
import { clientIdOf } from './client-id.js';

/** rcvp, rcvb, sentp, sentb. */
export type Counters = [number, number, number, number];

export type RecordKind = 'allocation' | 'unattributed';

/** One allocation as the model tracks it and the store persists it. */
export interface AllocationRecord {
  run: string;
  allocationId: string;
  /** 'unattributed': traffic with no status event ever (failed auth, TCP relay data connections). */
  kind: RecordKind;
  realm: string | null;
  username: string;
  clientId: string;
  transport: string | null;
  local: string | null;
  remote: string | null;
  lifetime: number | null;
  startedAt: number;
  endedAt: number | null;
  lastEventAt: number;
  endReason: string | null;
  endDetail: string | null;
  /** Set before the monitor cancels it (disconnect, revoke): the end reason once coturn's delete completes. */
  pendingReason: string | null;
  /** Running sums of the `traffic` / `traffic/peer` increments. */
  client: Counters;
  peer: Counters;
  /** coturn's own totals from `total_traffic*`, sent once on delete. */
  totalClient: Counters | null;
  totalPeer: Counters | null;
  /** Sums of the increments reported by the secondary source (stats.source 'both'). */
  altClient: Counters | null;
  altPeer: Counters | null;
  deletedAt: number | null;
  /** Which sources reported the delete (in 'both' mode we wait for both, or the grace). */
  deletedBy: UsageSource[];
  /** The secondary source saw the allocation start. */
  altSawNew: boolean;
  /** The primary source may have missed events of this allocation. */
  gap: boolean;
  /** Written to the store at least once. */
  persisted: boolean;
  /** In the model's set of records to write (a flag is cheaper than a Set lookup per event). */
  pendingWrite: boolean;
  /** False when events may be missing (source outage, child killed, monitor restarted). */
  complete: boolean;
}

const zero = (): Counters => [0, 0, 0, 0];
const countersOf = (e: TrafficEvent): Counters => [e.rcvp, e.rcvb, e.sentp, e.sentb];

/** The counters a closed record reports: coturn's totals when it sent them, else the sums. */
export function finalCounters(r: AllocationRecord): { client: Counters; peer: Counters } {
  return { client: r.totalClient ?? r.client, peer: r.totalPeer ?? r.peer };
}

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

const RECENTLY_CLOSED = 20_000;

/**
 * The allocation model: consumes UsageEvents (from any source) and keeps open allocations keyed
 * by (turnserver run, allocation id). It never adds `traffic` to `total_traffic`: increments
 * are summed while the allocation lives, and the totals replace the sums when they come.
 * Changed records are collected for the store (drainDirty); closed ones then leave memory.
 */
export class AllocationModel {
  // run → allocation id → record: two lookups are cheaper than building a compound key per event.
  private readonly open = new Map<string, Map<string, AllocationRecord>>();
  private readonly dirty = new Set<AllocationRecord>();
  // Late events of an allocation already closed (the other source lagging) must not reopen it.
  private readonly closed = new Set<string>();
  private readonly closedRing: (string | undefined)[] = new Array(RECENTLY_CLOSED);
  private closedNext = 0;
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
    for (const r of this.records()) if (r.kind === 'allocation') n++;
    return n;
  }

  /** The open record of an allocation of a run, if any. */
  find(run: string, allocationId: string): AllocationRecord | null {
    return this.open.get(run)?.get(allocationId) ?? null;
  }

  openRecords(): AllocationRecord[] {
    return [...this.records()].filter((r) => r.kind === 'allocation');
  }

  private *records(): Generator<AllocationRecord> {
    for (const byId of this.open.values()) yield* byId.values();
  }

  /** Carry on with records checkpointed by an earlier monitor (its turnserver run was adopted). */
  restore(records: AllocationRecord[]): void {
    for (const r of records) {
      let byId = this.open.get(r.run);
      if (!byId) this.open.set(r.run, (byId = new Map()));
      byId.set(r.allocationId, r);
    }
  }

  /** Apply one event of the given turnserver run; returns the record it went to (null: ignored). */
  ingest(e: UsageEvent, run: string): AllocationRecord | null {
    let byId = this.open.get(run);
    if (!byId) this.open.set(run, (byId = new Map()));
    let r = byId.get(e.allocationId);
    if (!r) {
      if (this.closed.size > 0 && this.closed.has(`${run}\u0000${e.allocationId}`)) return null;
      r = this.create(e, run);
      byId.set(e.allocationId, r);
    }
    r.lastEventAt = e.at;
    switch (e.kind) {
      case 'status':
        this.onStatus(r, e);
        break;
      case 'traffic':
      case 'traffic/peer':
        if (e.source === this.primary)
          this.addIncrement(r, e.kind === 'traffic/peer', e.rcvp, e.rcvb, e.sentp, e.sentb, e.at);
        else this.onAltIncrement(r, e);
        break;
      case 'total_traffic':
        r.totalClient = countersOf(e);
        break;
      case 'total_traffic/peer':
        r.totalPeer = countersOf(e);
        break;
      case 'closed':
        this.onClosed(r, e);
        break;
    }
    this.markDirty(r);
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
    this.markDirty(r);
    this.hooks.onIncrement?.(peer, rcvb, sentb);
  }

  private markDirty(r: AllocationRecord): void {
    if (r.pendingWrite) return;
    r.pendingWrite = true;
    this.dirty.add(r);
  }

  /** Everything the end of an allocation brings has arrived. */
  private endComplete(r: AllocationRecord): boolean {
    // The log reports its last usage lines before `delete:`, so a log delete is final.
    const primaryDone =
      this.primary === 'log' ? r.deletedBy.includes('log') : r.totalClient !== null && r.totalPeer !== null;
    return primaryDone && (this.secondary === null || r.deletedBy.includes(this.secondary));
  }

  private create(e: UsageEvent, run: string): AllocationRecord {
    return {
      run,
      allocationId: e.allocationId,
      kind: e.kind === 'status' ? 'allocation' : 'unattributed',
      realm: e.realm,
      username: e.username,
      clientId: clientIdOf(e.username),
      transport: null,
      local: null,
      remote: null,
      lifetime: null,
      startedAt: e.at,
      endedAt: null,
      lastEventAt: e.at,
      endReason: null,
      endDetail: null,
      pendingReason: null,
      client: zero(),
      peer: zero(),
      totalClient: null,
      totalPeer: null,
      altClient: null,
      altPeer: null,
      deletedAt: null,
      deletedBy: [],
      gap: false,
      persisted: false,
      pendingWrite: false,
      altSawNew: e.source !== this.primary && e.kind === 'status' && e.status === 'new',
      // Without a `new` we did not see the allocation start: its sums may miss early traffic.
      complete: e.source === this.primary && e.kind === 'status' && e.status === 'new',
    };
  }

  private onStatus(r: AllocationRecord, e: StatusEvent): void {
    if (r.kind === 'unattributed') {
      // A status after traffic: it is a real allocation after all (we joined late).
      r.kind = 'allocation';
      r.complete = false;
      r.gap = true;
    }
    if (e.status === 'new') {
      r.startedAt = Math.min(r.startedAt, e.at);
      if (e.source === this.primary) r.complete = !r.gap;
      else r.altSawNew = true;
    }
    r.transport = e.transport ?? r.transport;
    r.local = e.local ?? r.local;
    r.remote = e.remote ?? r.remote;
    if (e.lifetime !== null) r.lifetime = e.lifetime;
    if (e.status === 'deleted') {
      r.deletedAt ??= e.at;
      if (!r.deletedBy.includes(e.source)) r.deletedBy.push(e.source);
    }
  }

  private onAltIncrement(r: AllocationRecord, e: TrafficEvent): void {
    const alt = e.kind === 'traffic' ? (r.altClient ??= zero()) : (r.altPeer ??= zero());
    alt[0] += e.rcvp;
    alt[1] += e.rcvb;
    alt[2] += e.sentp;
    alt[3] += e.sentb;
  }

  private onClosed(r: AllocationRecord, e: ClosedEvent): void {
    r.endDetail = e.reason;
    r.local = e.local ?? r.local;
    r.remote = e.remote ?? r.remote;
  }

  private close(r: AllocationRecord, at: number, reason: string, complete = r.complete): void {
    r.endedAt = at;
    r.endReason = reason;
    r.complete = complete;
    if (this.secondary && r.deletedAt !== null) this.reconcile(r);
    this.markDirty(r);
    this.open.get(r.run)?.delete(r.allocationId);
    // Only two sources can deliver events after the close (the slower one lagging behind).
    if (this.secondary) this.rememberClosed(`${r.run}\u0000${r.allocationId}`);
  }

  private rememberClosed(key: string): void {
    const old = this.closedRing[this.closedNext];
    if (old !== undefined) this.closed.delete(old);
    this.closedRing[this.closedNext] = key;
    this.closedNext = (this.closedNext + 1) % RECENTLY_CLOSED;
    this.closed.add(key);
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
    for (const r of this.records()) {
      if (r.deletedAt !== null && now - r.deletedAt >= this.deleteGraceMs)
        this.close(r, r.deletedAt, r.pendingReason ?? 'deleted');
      else if (r.kind === 'unattributed' && now - r.lastEventAt >= unattributedIdleMs)
        this.close(r, r.lastEventAt, 'idle');
    }
  }

  /** Changed records not written yet (open ones wait for a checkpoint). */
  get dirtyCount(): number {
    return this.dirty.size;
  }

  /** Whether tick() has anything to time out: a deleted allocation or unattributed traffic. */
  hasTimedWork(): boolean {
    for (const r of this.records()) if (r.deletedAt !== null || r.kind === 'unattributed') return true;
    return false;
  }

  /** The turnserver run ended (any reason): close what it left open with what we have seen. */
  closeRun(run: string, at: number, reason: string): number {
    let n = 0;
    for (const r of this.open.get(run)?.values() ?? []) {
      // A deleted allocation still waiting for its totals closes normally with its sums.
      if (r.deletedAt !== null) this.close(r, r.deletedAt, r.pendingReason ?? 'deleted');
      else {
        this.close(r, at, reason, false);
        n++;
      }
    }
    this.open.delete(run);
    return n;
  }

  /**
   * Open allocations of the run that coturn no longer has (`live`: its `ps`): they ended while
   * nobody listened. Closed at their last checkpointed event, incomplete; returns how many.
   */
  closeUnlisted(run: string, live: ReadonlySet<string>, reason: string): number {
    let n = 0;
    for (const r of [...(this.open.get(run)?.values() ?? [])]) {
      if (r.kind !== 'allocation' || live.has(r.allocationId) || r.deletedAt !== null) continue;
      this.close(r, r.lastEventAt, reason, false);
      n++;
    }
    return n;
  }

  /** Events may have been lost (source outage): every open record is possibly incomplete. */
  markGap(): void {
    for (const r of this.records()) {
      r.complete = false;
      r.gap = true;
      this.markDirty(r);
    }
  }

  /**
   * Records to write now: new and closed ones always (so a record exists, and is final, within
   * one flush), and changed open ones only when `checkpoint` is set. Rewriting every open
   * allocation on every flush would cost one SQLite upsert per event on a busy host; once a
   * checkpoint interval (stats.checkpointMs) bounds what a SIGKILL can lose.
   */
  drainDirty(checkpoint = true): AllocationRecord[] {
    if (this.dirty.size === 0) return [];
    const out: AllocationRecord[] = [];
    for (const r of this.dirty) {
      if (checkpoint || r.endedAt !== null || !r.persisted) {
        out.push(r);
        r.persisted = true;
        r.pendingWrite = false;
        this.dirty.delete(r);
      }
    }
    return out;
  }
}
