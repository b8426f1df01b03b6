import path from 'node:path';
import Database from 'better-sqlite3';
import type { Redis } from 'ioredis';
import type { Harness } from './harness.js';
import type { MonitorProcess } from './monitor.js';
import type { Postgres } from './postgres.js';
import { statsConfig } from './statsdb.js';

/** Overrides for a monitor that exports to `pg` as `hostId`, with its own data dir. */
export function exportConfig(
  h: Harness,
  pg: Postgres | { url: string },
  hostId: string,
  postgres: Record<string, unknown> = {},
) {
  return {
    ...statsConfig,
    dataDir: path.join(h.dir, `data-${hostId}`),
    export: { postgres: { url: pg.url, hostId, intervalSec: 0.3, ...postgres } },
  };
}

const COUNTERS = ['rcvp', 'rcvb', 'sentp', 'sentb', 'peer_rcvp', 'peer_rcvb', 'peer_sentp', 'peer_sentb'];

/** A comparable line per record: key, counters, end. */
const line = (r: Record<string, unknown>, end: unknown) =>
  [
    r.run,
    r.allocation_id,
    r.kind,
    ...COUNTERS.map((c) => Number(r[c])),
    end === null ? null : Number(end),
    r.end_reason,
    Boolean(r.complete),
  ].join('|');

/** Every record in a monitor's usage.db, as comparable lines (sorted). */
export function sqliteLines(m: MonitorProcess): string[] {
  const db = new Database(path.join(m.dataDir, 'usage.db'), { readonly: true });
  try {
    return (db.prepare('SELECT * FROM allocations').all() as Record<string, unknown>[])
      .map((r) => line(r, r.ended_at))
      .sort();
  } finally {
    db.close();
  }
}

/** Every record of `hostId` in PostgreSQL, as comparable lines (sorted). */
export async function pgLines(pg: Postgres, hostId: string): Promise<string[]> {
  const rows = await pg.query(
    `SELECT *, (extract(epoch from ended_at) * 1000)::bigint AS ended_ms FROM turn_monitor.allocations WHERE host_id = $1`,
    [hostId],
  );
  return rows.map((r) => line(r, r.ended_ms)).sort();
}

/** Whether PostgreSQL holds exactly the monitor's records (none missing, none extra, same figures). */
export async function pgMatches(pg: Postgres, m: MonitorProcess, hostId: string): Promise<boolean> {
  const [a, b] = [sqliteLines(m), await pgLines(pg, hostId)];
  return a.length > 0 && a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * Publish `n` complete synthetic allocations (new, traffic, deleted, totals) on a monitor's Redis,
 * ids from `base` on; coturn's real ones are small, these start at 9·10^17.
 */
export async function publishAllocations(pub: Redis, n: number, base: number): Promise<void> {
  for (let start = 0; start < n; start += 1000) {
    const p = pub.pipeline();
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      const id = String(900_000_000_000_000_000n + BigInt(base + i));
      const t = `turn/realm/test.local/user/1795348399:synth${i % 7}/allocation/${id}`;
      const c = `rcvp=${i + 1}, rcvb=${(i + 1) * 100}, sentp=${i + 2}, sentb=${(i + 2) * 100}`;
      p.publish(
        `${t}/status`,
        'new lifetime=600, type=UDP, local=127.0.0.1:3478, remote=127.0.0.1:50000, ssl=NONE, cipher=NONE',
      );
      p.publish(`${t}/traffic`, c);
      p.publish(`${t}/traffic/peer`, c);
      p.publish(`${t}/status`, 'deleted');
      p.publish(`${t}/total_traffic`, c);
      p.publish(`${t}/total_traffic/peer`, c);
    }
    await p.exec();
  }
}

export async function pgCount(pg: Postgres, hostId: string): Promise<number> {
  return Number(
    (
      await pg.query<{ n: string }>('SELECT count(*) AS n FROM turn_monitor.allocations WHERE host_id = $1', [hostId])
    )[0].n,
  );
}
