import path from 'node:path';
import Database from 'better-sqlite3';
import type { Redis } from 'ioredis';
import type { Harness } from './harness.js';
import type { MonitorProcess } from './monitor.js';
import type { Postgres } from './postgres.js';
import { statsConfig } from './statsdb.js';
import { Outbox } from '../../src/export/outbox.js';
import { COUNTER_COLUMNS, unionHostIds } from '../../src/export/pg-schema.js';
import { Shipper, type ShipperOptions } from '../../src/export/shipper.js';
import type { AllocationRecord, Counters } from '../../src/stats/allocation-record.js';
import { UsageStore } from '../../src/stats/store.js';

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

/** A closed allocation record for in-process shippers; override what the test is about. */
export function allocationRecord(id: string, over: Partial<AllocationRecord> = {}): AllocationRecord {
  const t = over.startedAt ?? Date.UTC(2026, 0, 15, 12);
  const c: Counters = [10, 1000, 11, 1100];
  return {
    run: 'run-1',
    allocationId: id,
    kind: 'allocation',
    realm: 'test.local',
    username: '1795348399:alice',
    clientId: 'alice',
    transport: 'UDP',
    local: '127.0.0.1:3478',
    remote: '127.0.0.1:50000',
    lifetime: 600,
    startedAt: t,
    endedAt: t + 60_000,
    lastEventAt: t + 60_000,
    endReason: 'deleted',
    endDetail: null,
    pendingReason: null,
    client: c,
    peer: c,
    totalClient: null,
    totalPeer: null,
    altClient: null,
    altPeer: null,
    deletedAt: null,
    deletedBy: [],
    altSawNew: false,
    gap: false,
    persisted: true,
    pendingWrite: false,
    complete: true,
    ...over,
  };
}

export interface LocalShipper {
  hostId: string;
  store: UsageStore;
  shipper: Shipper;
  /** Write records into usage.db (the outbox marks them). */
  write(records: AllocationRecord[]): void;
  /** Ship every marked row now; returns the rows sent. */
  ship(): Promise<number>;
  close(): Promise<void>;
}

/**
 * A monitor's export in-process: its own usage.db (the monitor's store, outbox and Shipper), a
 * clock the test moves. Closed at the harness's clean-up.
 */
export function localShipper(
  h: Harness,
  pg: Postgres | { url: string },
  hostId: string,
  opts: Partial<ShipperOptions> = {},
): LocalShipper {
  const file = path.join(h.dir, `usage-${hostId}.db`);
  const store = new UsageStore(file);
  const outbox = new Outbox(file);
  const shipper = new Shipper(
    outbox,
    { url: pg.url, hostId, intervalMs: 60_000, batchSize: 100, secrets: [], ...opts },
    { shipped() {}, failed() {}, recovered() {}, migrated() {} },
  );
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await shipper.stop();
    outbox.close();
    store.close();
  };
  h.onCleanup(close);
  return {
    hostId,
    store,
    shipper,
    write: (records) => store.write(records),
    ship: () => shipper.shipAll(true),
    close,
  };
}

/**
 * The rollup invariant, as the differences found (empty when it holds): per client, the hourly
 * rollup sums to its allocations' counters (and count, and incomplete ones); each month of
 * client_usage_monthly sums its hours and lists their hosts; `hosts` counts an hour's host ids.
 */
export async function rollupMismatches(pg: Postgres): Promise<string[]> {
  const sums = ['allocations', ...COUNTER_COLUMNS, 'client_bytes', 'peer_bytes', 'incomplete'];
  const rawSums = [
    'count(*)',
    ...COUNTER_COLUMNS.map((c) => `sum(${c})`),
    'sum(rcvb + sentb)',
    'sum(peer_rcvb + peer_sentb)',
    'count(*) FILTER (WHERE NOT complete)',
  ];
  // A side with no row counts as zeros (a client whose allocations all moved to another keeps rows of 0).
  const cmp = (a: string, b: string) =>
    sums.map((c) => `coalesce(${a}.${c}, 0) <> coalesce(${b}.${c}, 0)`).join(' OR ');
  const out: string[] = [];
  const q = async (label: string, sql: string) => {
    for (const r of await pg.query(sql)) out.push(`${label}: ${JSON.stringify(r)}`);
  };
  await q(
    'client total',
    `WITH raw AS (SELECT realm, client_id, ${rawSums.map((s, i) => `${s}::bigint AS ${sums[i]}`).join(', ')}
                    FROM turn_monitor.allocations WHERE kind = 'allocation' GROUP BY realm, client_id),
          rol AS (SELECT realm, client_id, ${sums.map((c) => `sum(${c})::bigint AS ${c}`).join(', ')}
                    FROM turn_monitor.client_usage_hourly GROUP BY realm, client_id)
     SELECT coalesce(raw.client_id, rol.client_id) AS client, row_to_json(raw) AS raw, row_to_json(rol) AS rollup
       FROM raw FULL JOIN rol ON raw.client_id = rol.client_id AND raw.realm IS NOT DISTINCT FROM rol.realm
      WHERE ${cmp('raw', 'rol')}`,
  );
  await q(
    'month',
    `WITH h AS (SELECT date_trunc('month', hour) AS month, realm, client_id, ${sums.map((c) => `sum(${c})::bigint AS ${c}`).join(', ')},
                       cardinality(${unionHostIds()}) AS hosts, ${unionHostIds()} AS host_ids
                  FROM turn_monitor.client_usage_hourly GROUP BY 1, realm, client_id)
     SELECT coalesce(m.client_id, h.client_id) AS client, coalesce(m.month, h.month) AS month, m.hosts, h.hosts AS hour_hosts
       FROM turn_monitor.client_usage_monthly m
       FULL JOIN h ON h.month = m.month AND h.client_id = m.client_id AND h.realm IS NOT DISTINCT FROM m.realm
      WHERE ${cmp('m', 'h')} OR coalesce(m.hosts, 0) <> coalesce(h.hosts, 0)
         OR ARRAY(SELECT unnest(m.host_ids) ORDER BY 1) IS DISTINCT FROM coalesce(h.host_ids, '{}')`,
  );
  await q(
    'hour hosts',
    `SELECT hour, client_id, hosts, host_ids FROM turn_monitor.client_usage_hourly
      WHERE hosts <> cardinality(host_ids) OR cardinality(host_ids) <> cardinality(ARRAY(SELECT DISTINCT unnest(host_ids)))`,
  );
  return out;
}
