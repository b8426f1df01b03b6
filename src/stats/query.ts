import { COUNTERS, type AllocationRow, type CounterKey } from './allocation-row.js';
import type { UsageFilter, UsageView } from './usage/usage-sql.js';

export { liveRow, type AllocationRow } from './allocation-row.js';

export type { UsageFilter, UsageView } from './usage/usage-sql.js';
export { formatUsage } from './usage/usage-format.js';

/** A row with its times in ms, as the views below group them; `hostId` set for fleet rows. */
export type TimedRow = AllocationRow & { hostId?: string; _start: number; _end: number | null };

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function timed(row: AllocationRow, start: number, end: number | null): TimedRow {
  return { ...row, _start: start, _end: end };
}

const strip = <T extends { _start: number; _end: number | null }>({ _start, _end, ...rest }: T) => rest;

function sum(rows: AllocationRow[]): Record<CounterKey, number> {
  const out = Object.fromEntries(COUNTERS.map((k) => [k, 0])) as Record<CounterKey, number>;
  for (const r of rows) for (const k of COUNTERS) out[k] += r[k];
  return out;
}

/**
 * Sessions per (realm, clientId): allocations whose lifetimes overlap form one session, from its
 * first start to its last end (a still-open allocation extends to now).
 */
function sessions(rows: TimedRow[], now: number) {
  const byClient = new Map<string, TimedRow[]>();
  for (const r of rows) {
    const key = `${r.hostId ?? ''}\u0000${r.realm ?? ''}\u0000${r.clientId}`;
    (byClient.get(key) ?? byClient.set(key, []).get(key)!).push(r);
  }
  const out: (Record<CounterKey, number> & {
    hostId?: string;
    realm: string | null;
    clientId: string;
    startedAt: string | null;
    endedAt: string | null;
    durationSec: number;
    allocations: number;
    relayed: boolean;
    complete: boolean;
  })[] = [];
  for (const list of byClient.values()) {
    list.sort((a, b) => a._start - b._start);
    let group: typeof list = [];
    let groupEnd = -Infinity;
    const emit = () => {
      if (group.length === 0) return;
      const open = group.some((g) => g._end === null);
      const start = group[0]._start;
      const counters = sum(group);
      out.push({
        ...(group[0].hostId === undefined ? {} : { hostId: group[0].hostId }),
        realm: group[0].realm,
        clientId: group[0].clientId,
        startedAt: iso(start),
        endedAt: open ? null : iso(groupEnd),
        durationSec: Math.round(((open ? now : groupEnd) - start) / 1000),
        allocations: group.length,
        ...counters,
        relayed: counters.peerRcvb + counters.peerSentb > 0,
        complete: group.every((g) => g.complete),
      });
    };
    for (const r of list) {
      const end = r._end ?? now;
      if (r._start > groupEnd) {
        emit();
        group = [];
      }
      group.push(r);
      groupEnd = Math.max(groupEnd, end);
    }
    emit();
  }
  return out.sort((a, b) => String(a.startedAt).localeCompare(String(b.startedAt)));
}

/**
 * One view over selected rows (of the right kind). With fleet rows (`hostId` set) sessions are
 * per host, and users are summed across hosts (`hostId` lists the hosts).
 */
export function usageFromRows(rows: TimedRow[], view: UsageView, now = Date.now()): Record<string, unknown>[] {
  if (view === 'unattributed' || view === 'allocation') return rows.map(strip);
  const s = sessions(rows, now);
  if (view === 'session') return s;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a summed row whose counter keys come from COUNTERS
  const users = new Map<string, Record<string, any>>();
  for (const x of s) {
    const key = `${x.realm ?? ''}\u0000${x.clientId}`;
    const u = users.get(key) ?? {
      ...(x.hostId === undefined ? {} : { hostId: x.hostId }),
      realm: x.realm,
      clientId: x.clientId,
      sessions: 0,
      allocations: 0,
      durationSec: 0,
      ...sum([]),
      relayed: false,
      firstSeen: x.startedAt,
      lastSeen: x.endedAt,
    };
    if (x.hostId !== undefined && !String(u.hostId).split(',').includes(x.hostId))
      u.hostId = [...String(u.hostId).split(','), x.hostId].sort().join(',');
    u.sessions++;
    u.allocations += x.allocations;
    u.durationSec += x.durationSec;
    for (const k of COUNTERS) u[k] += x[k];
    u.relayed ||= x.relayed;
    u.lastSeen = x.endedAt === null || u.lastSeen === null ? null : x.endedAt > u.lastSeen ? x.endedAt : u.lastSeen;
    users.set(key, u);
  }
  return [...users.values()];
}

/** Parse the shared filters (CLI flags or query string); throws a message naming the bad one. */
export function parseFilter(input: { user?: unknown; from?: unknown; to?: unknown }): UsageFilter {
  const f: UsageFilter = {};
  if (input.user !== undefined) {
    if (typeof input.user !== 'string' || input.user.length === 0) throw new Error('user must be a non-empty string');
    f.user = input.user;
  }
  for (const k of ['from', 'to'] as const) {
    const v = input[k];
    if (v === undefined) continue;
    const t = typeof v === 'string' ? Date.parse(v) : NaN;
    if (Number.isNaN(t)) throw new Error(`${k} must be an ISO-8601 date or time`);
    f[k] = t;
  }
  if (f.from !== undefined && f.to !== undefined && f.from >= f.to) throw new Error('from must be before to');
  return f;
}
