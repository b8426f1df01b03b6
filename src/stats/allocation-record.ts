import type { ClosedEvent, StatusEvent, TrafficEvent, UsageEvent, UsageSource } from './events.js';
import { clientIdOf } from './client-id.js';

// One allocation's record and what a single event does to it; which records are open, and when
// one closes, is the model's (model.ts).

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
  /**
   * Which sources reported the delete (in 'both' mode we wait for both, or the grace). Replaced,
   * never pushed to: a record starts with the shared empty NOBODY, and an array grown by push()
   * reserves 17 slots.
   */
  deletedBy: readonly UsageSource[];
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

export const zero = (): Counters => [0, 0, 0, 0];
/** deletedBy of a record no source reported deleted. */
export const NOBODY: readonly UsageSource[] = Object.freeze([]);
export const countersOf = (e: TrafficEvent): Counters => [e.rcvp, e.rcvb, e.sentp, e.sentb];

/** The counters a closed record reports: coturn's totals when it sent them, else the sums. */
export function finalCounters(r: AllocationRecord): { client: Counters; peer: Counters } {
  return { client: r.totalClient ?? r.client, peer: r.totalPeer ?? r.peer };
}

/** The record the first event of an allocation opens; `primary` is the source whose sums count. */
export function newRecord(e: UsageEvent, run: string, primary: UsageSource): AllocationRecord {
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
    deletedBy: NOBODY,
    gap: false,
    persisted: false,
    pendingWrite: false,
    altSawNew: e.source !== primary && e.kind === 'status' && e.status === 'new',
    // Without a `new` we did not see the allocation start: its sums may miss early traffic.
    complete: e.source === primary && e.kind === 'status' && e.status === 'new',
  };
}

export function applyStatus(r: AllocationRecord, e: StatusEvent, primary: UsageSource): void {
  if (r.kind === 'unattributed') {
    // A status after traffic: it is a real allocation after all (we joined late).
    r.kind = 'allocation';
    r.complete = false;
    r.gap = true;
  }
  if (e.status === 'new') {
    r.startedAt = Math.min(r.startedAt, e.at);
    if (e.source === primary) r.complete = !r.gap;
    else r.altSawNew = true;
  }
  // Every refresh repeats the addresses: the record keeps the strings it has (long-lived by now),
  // and the event's copies die young.
  if (e.transport !== null && e.transport !== r.transport) r.transport = e.transport;
  if (e.local !== null && e.local !== r.local) r.local = e.local;
  if (e.remote !== null && e.remote !== r.remote) r.remote = e.remote;
  if (e.lifetime !== null) r.lifetime = e.lifetime;
  if (e.status === 'deleted') {
    r.deletedAt ??= e.at;
    if (!r.deletedBy.includes(e.source)) r.deletedBy = [...r.deletedBy, e.source];
  }
}

/** An increment of the secondary source: onto the alt sums, which the close reconciles with the totals. */
export function addAltIncrement(r: AllocationRecord, e: TrafficEvent): void {
  const alt = e.kind === 'traffic' ? (r.altClient ??= zero()) : (r.altPeer ??= zero());
  alt[0] += e.rcvp;
  alt[1] += e.rcvb;
  alt[2] += e.sentp;
  alt[3] += e.sentb;
}

export function applyClosed(r: AllocationRecord, e: ClosedEvent): void {
  r.endDetail = e.reason;
  r.local = e.local ?? r.local;
  r.remote = e.remote ?? r.remote;
}
