/**
 * What a busy fleet's shippers send, for the `rollup_choice` benchmark: batches of one host's
 * rows (SHIP_COLUMNS order, times in epoch ms), each record once with its latest state (as the
 * outbox marks it), in the order the hosts fill them. Every allocation is sent when it opens
 * (no traffic yet), again every 10 minutes of its call with grown counters and a later last
 * event (so its bytes move on into later hours), and once more when it closes. One in 50 is
 * first seen without its `new` (kind `unattributed`, nothing billed) and becomes an allocation on
 * its next send; one in 33 stays incomplete. Deterministic: every run sends the same batches.
 */

const MINUTE = 60_000;
/** Clients of the fleet (as bench/fleet-store.ts generates). */
const CLIENTS = 50_000;
/** A traffic update of an open call every this often. */
const UPDATE_EVERY = 10 * MINUTE;

export interface FleetLoad {
  /** Hosts shipping (busy ones: each fills a batch of 500 in about two minutes). */
  hosts: number;
  /** A new allocation somewhere in the fleet every this many ms. */
  everyMs: number;
  /** Start of the fleet's timeline (epoch ms). */
  t0: number;
  batchSize: number;
}

export interface Batch {
  host: string;
  rows: unknown[][];
  /** Rows that are the record's first send (an insert into the raw table). */
  firstSends: number;
  /** The fleet time the batch filled (ms). */
  at: number;
}

/** Allocation k's row as sent at `t` (start ≤ t ≤ end). */
function row(k: number, t: number, load: FleetLoad): unknown[] {
  const start = load.t0 + k * load.everyMs;
  const end = start + duration(k);
  const closed = t >= end;
  const secs = (t - start) / 1000;
  const pps = 10 + (k % 90);
  const p = Math.floor(pps * secs);
  const b = p * (100 + (k % 1100));
  const client = (k * 2654435761) % CLIENTS;
  const kind = k % 50 === 7 && t === start ? 'unattributed' : 'allocation';
  return [
    String(k).padStart(18, '0'),
    'bench',
    kind,
    'fleet.local',
    `1795348399:c${client}`,
    `c${client}`,
    'UDP',
    '127.0.0.1:3478',
    '127.0.0.1:50000',
    600,
    start,
    closed ? end : null,
    t,
    closed ? 'deleted' : null,
    null,
    p,
    b,
    p,
    b,
    p,
    b,
    p,
    b,
    k % 33 !== 5,
  ];
}

/** 10 s to an hour, spread over the allocations. */
const duration = (k: number) => 10_000 + ((k * 7919) % 3590) * 1000;

/**
 * The first `count` batches of the fleet's timeline: every host's changed records, a batch of
 * `batchSize` as soon as a host has that many (a record changed twice meanwhile goes once).
 */
export function fleetBatches(load: FleetLoad, count: number): Batch[] {
  // Enough allocations for `count` batches: each sends 2 + its 10-minute updates (4.5 on average).
  const allocations = Math.ceil(((count + load.hosts) * load.batchSize) / 3);
  const events: [number, number][] = [];
  for (let k = 0; k < allocations; k++) {
    const start = load.t0 + k * load.everyMs;
    const d = duration(k);
    for (let at = 0; at < d; at += UPDATE_EVERY) events.push([start + at, k]);
    events.push([start + d, k]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const pending = Array.from({ length: load.hosts }, () => new Map<number, unknown[]>());
  const shipped = new Set<number>();
  const out: Batch[] = [];
  for (const [t, k] of events) {
    const h = k % load.hosts;
    const p = pending[h];
    p.set(k, row(k, t, load));
    if (p.size < load.batchSize) continue;
    let firstSends = 0;
    for (const id of p.keys()) {
      if (!shipped.has(id)) firstSends++;
      shipped.add(id);
    }
    out.push({ host: `host-${h}`, rows: [...p.values()], firstSends, at: t });
    p.clear();
    if (out.length === count) return out;
  }
  throw new Error(`fleetBatches: ${out.length} of ${count} batches from ${allocations} allocations`);
}
