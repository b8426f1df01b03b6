import path from 'node:path';
import Database from 'better-sqlite3';
import type { MonitorProcess } from './monitor.js';
import type { Postgres } from './postgres.js';

export const HOURLY_COUNTERS = ['rcvp', 'rcvb', 'sentp', 'sentb', 'peer_rcvp', 'peer_rcvb', 'peer_sentp', 'peer_sentb'];

/** A row of `unattributed_hourly` as comparable numbers: hour (ms), realm, username, sessions, 8 counters. */
export type HourlyLine = [number, string, string, number, ...number[]];

function readDb<T>(m: MonitorProcess, fn: (db: Database.Database) => T): T {
  const db = new Database(path.join(m.dataDir, 'usage.db'), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** The monitor's `unattributed_hourly`, sorted. */
export function sqliteHourly(m: MonitorProcess): HourlyLine[] {
  return readDb(m, (db) =>
    (db.prepare('SELECT * FROM unattributed_hourly ORDER BY hour, realm, username').all() as Record<string, any>[]).map(
      (r) => [r.hour, r.realm, r.username, r.sessions, ...HOURLY_COUNTERS.map((c) => r[c] as number)] as HourlyLine,
    ),
  );
}

/** The monitor's `allocations` rows of kind 'unattributed' (relay traffic of sessions that never allocated). */
export function sqliteUnattributedRows(m: MonitorProcess): Record<string, any>[] {
  return readDb(m, (db) => db.prepare(`SELECT * FROM allocations WHERE kind = 'unattributed'`).all() as any[]);
}

export function sqliteAllocationCount(m: MonitorProcess): number {
  return readDb(m, (db) => db.prepare('SELECT count(*) FROM allocations').pluck().get() as number);
}

/** Sessions and counters per username, summed over hours and realms. */
export function byUsername(lines: HourlyLine[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const [, , username, ...figures] of lines) {
    const sum = out.get(username) ?? new Array<number>(figures.length).fill(0);
    figures.forEach((v, i) => (sum[i] += v));
    out.set(username, sum);
  }
  return out;
}

/** `turn_monitor.unattributed_hourly` of one host, in the shape of sqliteHourly. */
export async function pgHourly(pg: Postgres, hostId: string): Promise<HourlyLine[]> {
  const rows = await pg.query<Record<string, any>>(
    `SELECT (extract(epoch from hour) * 1000)::bigint AS hour_ms, * FROM turn_monitor.unattributed_hourly
      WHERE host_id = $1 ORDER BY hour, realm, username`,
    [hostId],
  );
  return rows.map(
    (r) =>
      [
        Number(r.hour_ms),
        r.realm,
        r.username,
        Number(r.sessions),
        ...HOURLY_COUNTERS.map((c) => Number(r[c])),
      ] as HourlyLine,
  );
}

/** A session of turnserver's verbose log that never allocated, as the monitor forwarded its lines. */
export interface LoggedSession {
  username: string;
  client: number[];
  peer: number[];
  remote: string | null;
  allocated: boolean;
}

/**
 * turnserver's own account of its sessions, from its lines in the monitor's log (`verbose`):
 * usage, peer usage, the remote of `closed (2nd stage)`, and whether it ever allocated.
 */
export function loggedSessions(m: MonitorProcess): Map<string, LoggedSession> {
  const out = new Map<string, LoggedSession>();
  const get = (id: string) => {
    let s = out.get(id);
    if (!s)
      out.set(id, (s = { username: '', client: [0, 0, 0, 0], peer: [0, 0, 0, 0], remote: null, allocated: false }));
    return s;
  };
  for (const e of m.logs) {
    if (e.component !== 'turnserver') continue;
    const u =
      /session (\d+): (peer )?usage: realm=<[^>]*>, username=<(.*)>, rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)$/.exec(
        e.msg,
      );
    if (u) {
      const s = get(u[1]);
      s.username = u[3];
      const side = u[2] ? s.peer : s.client;
      [4, 5, 6, 7].forEach((g, i) => (side[i] += Number(u[g])));
      continue;
    }
    const c =
      /session (\d+): closed \(2nd stage\), user <(.*)> realm <[^>]*> origin <.*>, local \S+, remote (\S+), reason:/.exec(
        e.msg,
      );
    if (c) get(c[1]).remote = c[3];
    if (/session (\d+): new, /.test(e.msg)) get(/session (\d+)/.exec(e.msg)![1]).allocated = true;
  }
  return out;
}

/** turn_monitor_stats_probe_sessions_total{by} of a monitor. */
export async function probeSessions(m: MonitorProcess, by: 'address' | 'signature'): Promise<number> {
  const text = (await m.get('/metrics')).text;
  return Number(
    new RegExp(`^turn_monitor_stats_probe_sessions_total\\{by="${by}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0,
  );
}
