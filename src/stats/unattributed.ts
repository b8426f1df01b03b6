import { finalCounters, type AllocationRecord } from './allocation-record.js';

// Sessions that never allocated (kind 'unattributed': STUN Binding requests, failed
// authentications, TCP relay data connections) are not allocations: they are summed per hour in
// `unattributed_hourly` when they close, and the monitor's own probes are not recorded at all.
// Only a never-allocated record that relayed bytes (peer counters > 0) keeps its own row.

export const HOUR_MS = 3_600_000;

/** The start of the UTC hour holding `ms` (epoch ms). */
export function hourOf(ms: number): number {
  return Math.floor(ms / HOUR_MS) * HOUR_MS;
}

/** The stats side's view of the monitor's own liveness/readiness probes (the supervisor's prober). */
export interface OwnProbes {
  /** Whether coturn's `ip:port` of a session's remote is an address our probes were sent from. */
  isOwnAddress(address: string): boolean;
  /** Whether probes were sent recently enough that coturn may still report their sessions. */
  running(): boolean;
}

/** The probe is a bare Binding request: the 20-byte STUN header, no attributes. */
export const BINDING_REQUEST_BYTES = 20;

/** endReason of a record closed as soon as it was known to be one of our probes (it is never stored). */
export const OWN_PROBE = 'own-probe';

/** Relayed bytes: a never-allocated record carrying them stays a row of `allocations`. */
export function relayed(r: AllocationRecord): boolean {
  const { peer } = finalCounters(r);
  return peer[0] > 0 || peer[1] > 0 || peer[2] > 0 || peer[3] > 0;
}

/** The Redis source's probe rule (it publishes no address): see hasProbeSignature. */
export function hasProbeSignature(r: AllocationRecord): boolean {
  if (r.kind !== 'unattributed' || r.username !== '') return false;
  const { client } = finalCounters(r);
  const k = client[0];
  // Never allocated, no username, k requests of 20 bytes each answered (rcvp = sentp = k, rcvb = 20·k), nothing relayed.
  return k > 0 && client[2] === k && client[1] === BINDING_REQUEST_BYTES * k && !relayed(r);
}

/**
 * Which rule makes a closed never-allocated record one of our probes' sessions, or null: the
 * address when coturn gave one (the log's `closed` line), else the Redis signature while probes run.
 */
export function ownProbeRule(r: AllocationRecord, probes: OwnProbes | null): 'address' | 'signature' | null {
  if (r.endReason === OWN_PROBE) return 'signature';
  if (probes === null || r.kind !== 'unattributed') return null;
  if (r.remote !== null) return probes.isOwnAddress(r.remote) ? 'address' : null;
  return probes.running() && hasProbeSignature(r) ? 'signature' : null;
}

/**
 * What the store does with a changed record: 'row' (an allocation, or unattributed relay traffic),
 * 'unstored' (a never-allocated session still open: nothing is written before it closes), 'probe'
 * (our own probe: dropped) or 'hourly' (added to its hour in `unattributed_hourly`).
 */
export type Disposition = 'row' | 'unstored' | 'probe' | 'hourly';

export function dispositionOf(r: AllocationRecord, probes: OwnProbes | null): Disposition {
  if (r.kind !== 'unattributed' || relayed(r)) return 'row';
  if (r.endedAt === null) return 'unstored';
  return ownProbeRule(r, probes) !== null ? 'probe' : 'hourly';
}

/** `unattributed_hourly`'s counter columns, in the order of HourlyRow.counters. */
export const HOURLY_COUNTERS = [
  'rcvp',
  'rcvb',
  'sentp',
  'sentb',
  'peer_rcvp',
  'peer_rcvb',
  'peer_sentp',
  'peer_sentb',
] as const;

/** What closed records add to one row of `unattributed_hourly`. */
export interface HourlyRow {
  /** Epoch ms, start of the UTC hour the sessions started in. */
  hour: number;
  /** '' when turnserver runs without a realm. */
  realm: string;
  username: string;
  sessions: number;
  /** In HOURLY_COUNTERS order. */
  counters: number[];
}

/** Closed never-allocated records summed per (hour of their start, realm, username). */
export function hourlyRows(records: readonly AllocationRecord[]): HourlyRow[] {
  const out = new Map<string, HourlyRow>();
  for (const r of records) {
    const hour = hourOf(r.startedAt);
    const realm = r.realm ?? '';
    const key = `${hour}\u0000${realm}\u0000${r.username}`;
    let row = out.get(key);
    if (!row)
      out.set(key, (row = { hour, realm, username: r.username, sessions: 0, counters: [0, 0, 0, 0, 0, 0, 0, 0] }));
    const { client, peer } = finalCounters(r);
    row.sessions++;
    for (let i = 0; i < 4; i++) {
      row.counters[i] += client[i];
      row.counters[i + 4] += peer[i];
    }
  }
  return [...out.values()];
}
