import { finalCounters, NOBODY, type AllocationRecord, type Counters } from './allocation-record.js';

/**
 * The allocation row, defined once: the stored SQL columns, the record fields they come from and
 * the public row (`usage --format json`, GET /usage, the fleet export) all derive from COLUMNS.
 */

export const COUNTERS = ['rcvp', 'rcvb', 'sentp', 'sentb', 'peerRcvp', 'peerRcvb', 'peerSentp', 'peerSentb'] as const;
export type CounterKey = (typeof COUNTERS)[number];

type Kind = 'text' | 'int' | 'time' | 'bool';

/**
 * One stored column: its SQL name, its kind, and the key of the public row (`null`: stored, not
 * shown). Order = the order of `usage --format json` keys for the public ones.
 */
export interface Column {
  sql: string;
  kind: Kind;
  key: keyof AllocationRow | null;
  nullable: boolean;
}

const col = (sql: string, kind: Kind, key: keyof AllocationRow | null, nullable = false): Column => ({
  sql,
  kind,
  key,
  nullable,
});

export const COLUMNS: readonly Column[] = [
  col('allocation_id', 'text', 'allocationId'),
  col('run', 'text', 'run'),
  col('kind', 'text', null),
  col('realm', 'text', 'realm', true),
  col('username', 'text', 'username'),
  col('client_id', 'text', 'clientId'),
  col('transport', 'text', 'transport', true),
  col('local', 'text', null, true),
  col('remote', 'text', null, true),
  col('lifetime', 'int', null, true),
  col('started_at', 'time', 'startedAt'),
  col('ended_at', 'time', 'endedAt', true),
  col('last_event_at', 'time', null),
  col('end_reason', 'text', 'endReason', true),
  col('end_detail', 'text', 'endDetail', true),
  col('rcvp', 'int', 'rcvp'),
  col('rcvb', 'int', 'rcvb'),
  col('sentp', 'int', 'sentp'),
  col('sentb', 'int', 'sentb'),
  col('peer_rcvp', 'int', 'peerRcvp'),
  col('peer_rcvb', 'int', 'peerRcvb'),
  col('peer_sentp', 'int', 'peerSentp'),
  col('peer_sentb', 'int', 'peerSentb'),
  col('complete', 'bool', 'complete'),
];

/** The public row: `usage --format json` of one allocation. */
export interface AllocationRow extends Record<CounterKey, number> {
  allocationId: string;
  run: string;
  realm: string | null;
  username: string;
  clientId: string;
  transport: string | null;
  startedAt: string;
  endedAt: string | null;
  endReason: string | null;
  endDetail: string | null;
  complete: boolean;
}

/** A row as SQLite stores it: times in epoch ms, booleans 0/1. */
export type DbRow = Record<string, string | number | null>;

/** The values of a record in COLUMNS order, as SQLite stores them. */
export function recordValues(r: AllocationRecord): (string | number | null)[] {
  const { client, peer } = finalCounters(r);
  return [
    r.allocationId,
    r.run,
    r.kind,
    r.realm,
    r.username,
    r.clientId,
    r.transport,
    r.local,
    r.remote,
    r.lifetime,
    r.startedAt,
    r.endedAt,
    r.lastEventAt,
    r.endReason,
    r.endDetail,
    ...client,
    ...peer,
    r.complete ? 1 : 0,
  ];
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A stored row (SQLite's representation) in the public shape. */
export function rowFromDb(r: DbRow): AllocationRow {
  const out: Record<string, unknown> = {};
  for (const c of COLUMNS) {
    if (c.key === null) continue;
    const v = r[c.sql];
    out[c.key] = c.kind === 'time' ? iso(v as number | null) : c.kind === 'bool' ? v === 1 : v;
  }
  return out as unknown as AllocationRow;
}

/** An open allocation from the live model, in the same shape as a stored row. */
export function liveRow(r: AllocationRecord): AllocationRow {
  const values = recordValues(r);
  const row = rowFromDb(Object.fromEntries(COLUMNS.map((c, i) => [c.sql, values[i]])));
  return { ...row, endedAt: null, endReason: null };
}

/** A stored open allocation as SQLite returns it (`SELECT *`). */
export interface OpenRow {
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

/** A stored open allocation back as a model record (a monitor carrying on an adopted run): the inverse of recordValues. */
export function openRecordFromDb(r: OpenRow): AllocationRecord {
  return {
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
    deletedBy: NOBODY,
    altSawNew: false,
    gap: r.complete === 0,
    persisted: true,
    pendingWrite: false,
    complete: r.complete === 1,
    pendingReason: null,
  };
}
