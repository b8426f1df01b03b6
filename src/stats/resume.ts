import type Database from 'better-sqlite3';
import type { Counters, AllocationRecord } from './model.js';
import type { LogPosition } from './store.js';

// Reading back what an earlier monitor committed, when this one adopts its turnserver run. Kept
// apart from store.ts (the write side) so the row shape is read in one place.

/** The log source's committed position, or null (never written). */
export function committedLogPosition(db: Database.Database): LogPosition | null {
  const row = db.prepare(`SELECT run, file, offset FROM log_position WHERE id = 1`).get() as LogPosition | undefined;
  return row ?? null;
}

interface OpenRow {
  run: string;
  allocation_id: string;
  kind: 'allocation' | 'unattributed';
  realm: string | null;
  username: string;
  client_id: string;
  transport: string | null;
  local: string | null;
  remote: string | null;
  lifetime: number | null;
  started_at: number;
  last_event_at: number;
  end_detail: string | null;
  complete: number;
  rcvp: number;
  rcvb: number;
  sentp: number;
  sentb: number;
  peer_rcvp: number;
  peer_rcvb: number;
  peer_sentp: number;
  peer_sentb: number;
}

/** The checkpointed open allocations of one turnserver run, as model records (to carry on with). */
export function openRecordsOf(db: Database.Database, run: string): AllocationRecord[] {
  const rows = db.prepare(`SELECT * FROM allocations WHERE ended_at IS NULL AND run = ?`).all(run) as OpenRow[];
  return rows.map((r) => ({
    run: r.run,
    allocationId: r.allocation_id,
    kind: r.kind,
    realm: r.realm,
    username: r.username,
    clientId: r.client_id,
    transport: r.transport,
    local: r.local,
    remote: r.remote,
    lifetime: r.lifetime,
    startedAt: r.started_at,
    endedAt: null,
    lastEventAt: r.last_event_at,
    endReason: null,
    endDetail: r.end_detail,
    client: [r.rcvp, r.rcvb, r.sentp, r.sentb] as Counters,
    peer: [r.peer_rcvp, r.peer_rcvb, r.peer_sentp, r.peer_sentb] as Counters,
    totalClient: null,
    totalPeer: null,
    altClient: null,
    altPeer: null,
    deletedAt: null,
    deletedBy: [],
    altSawNew: false,
    gap: r.complete === 0,
    persisted: true,
    pendingWrite: false,
    complete: r.complete === 1,
    pendingReason: null,
  }));
}

/** Close what earlier monitors left open, except the run being carried on; returns how many. */
export function closeLeftoversExcept(db: Database.Database, reason: string, keepRun: string | null): number {
  return db
    .prepare(
      `UPDATE allocations SET ended_at = last_event_at, end_reason = ?, complete = 0 WHERE ended_at IS NULL AND run IS NOT ?`,
    )
    .run(reason, keepRun).changes;
}
