import type { ClosedEvent, StatusEvent, TrafficEvent, UsageEvent } from './events.js';
import { clientIdOf } from './redis-events.js';

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
  /** Running sums of the `traffic` / `traffic/peer` increments. */
  client: Counters;
  peer: Counters;
  /** coturn's own totals from `total_traffic*`, sent once on delete. */
  totalClient: Counters | null;
  totalPeer: Counters | null;
  deletedAt: number | null;
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
  /** Called for each traffic increment (metrics). */
  onIncrement?(kind: 'traffic' | 'traffic/peer', c: Counters): void;
}

/**
 * The allocation model: consumes UsageEvents (from any source) and keeps open allocations keyed
 * by (turnserver run, allocation id). It never adds `traffic` to `total_traffic`: increments
 * are summed while the allocation lives, and the totals replace the sums when they come.
 * Changed records are collected for the store (drainDirty); closed ones then leave memory.
 */
export class AllocationModel {
  private readonly open = new Map<string, AllocationRecord>();
  private readonly dirty = new Set<AllocationRecord>();

  constructor(
    private readonly deleteGraceMs: number,
    private readonly hooks: ModelHooks = {},
  ) {}

  get openCount(): number {
    let n = 0;
    for (const r of this.open.values()) if (r.kind === 'allocation') n++;
    return n;
  }

  openRecords(): AllocationRecord[] {
    return [...this.open.values()].filter((r) => r.kind === 'allocation');
  }

  /** Apply one event of the given turnserver run. */
  ingest(e: UsageEvent, run: string): void {
    const key = `${run}\u0000${e.allocationId}`;
    let r = this.open.get(key);
    if (!r) {
      r = this.create(e, run);
      this.open.set(key, r);
    }
    r.lastEventAt = e.at;
    switch (e.kind) {
      case 'status':
        this.onStatus(r, e);
        break;
      case 'traffic':
      case 'traffic/peer':
        this.onIncrement(r, e);
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
    this.dirty.add(r);
    if (r.deletedAt !== null && r.totalClient && r.totalPeer) this.close(r, r.deletedAt, 'deleted');
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
      client: zero(),
      peer: zero(),
      totalClient: null,
      totalPeer: null,
      deletedAt: null,
      // Without a `new` we did not see the allocation start: its sums may miss early traffic.
      complete: e.kind === 'status' && e.status === 'new',
    };
  }

  private onStatus(r: AllocationRecord, e: StatusEvent): void {
    if (r.kind === 'unattributed') {
      // A status after traffic: it is a real allocation after all (we joined late).
      r.kind = 'allocation';
      r.complete = false;
    }
    if (e.status === 'new' && r.transport === null) r.startedAt = Math.min(r.startedAt, e.at);
    r.transport = e.transport ?? r.transport;
    r.local = e.local ?? r.local;
    r.remote = e.remote ?? r.remote;
    if (e.lifetime !== null) r.lifetime = e.lifetime;
    if (e.status === 'deleted' && r.deletedAt === null) r.deletedAt = e.at;
  }

  private onIncrement(r: AllocationRecord, e: TrafficEvent): void {
    const target = e.kind === 'traffic' ? r.client : r.peer;
    target[0] += e.rcvp;
    target[1] += e.rcvb;
    target[2] += e.sentp;
    target[3] += e.sentb;
    this.hooks.onIncrement?.(e.kind as 'traffic' | 'traffic/peer', countersOf(e));
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
    this.dirty.add(r);
    this.open.delete(`${r.run}\u0000${r.allocationId}`);
  }

  /**
   * Time-driven work: a deleted allocation whose totals never came closes with its sums after
   * the grace; unattributed traffic idle for a while is flushed and forgotten.
   */
  tick(now: number, unattributedIdleMs = 120_000): void {
    for (const r of this.open.values()) {
      if (r.deletedAt !== null && now - r.deletedAt >= this.deleteGraceMs) this.close(r, r.deletedAt, 'deleted');
      else if (r.kind === 'unattributed' && now - r.lastEventAt >= unattributedIdleMs) this.close(r, r.lastEventAt, 'idle');
    }
  }

  /** The turnserver run ended (any reason): close what it left open with what we have seen. */
  closeRun(run: string, at: number, reason: string): number {
    let n = 0;
    for (const r of this.open.values()) {
      if (r.run !== run) continue;
      // A deleted allocation still waiting for its totals closes normally with its sums.
      if (r.deletedAt !== null) this.close(r, r.deletedAt, 'deleted');
      else {
        this.close(r, at, reason, false);
        n++;
      }
    }
    return n;
  }

  /** Events may have been lost (source outage): every open record is possibly incomplete. */
  markGap(): void {
    for (const r of this.open.values()) {
      r.complete = false;
      this.dirty.add(r);
    }
  }

  /** Records changed since the last call (open ones as checkpoints, closed ones final). */
  drainDirty(): AllocationRecord[] {
    if (this.dirty.size === 0) return [];
    const out = [...this.dirty];
    this.dirty.clear();
    return out;
  }
}
