import path from 'node:path';
import type { Harness, Tracked } from '../test/harness/harness.js';
import { startMonitor, type MonitorProcess } from '../test/harness/monitor.js';
import { startPostgres, type Postgres } from '../test/harness/postgres.js';
import { relayAsClient } from '../test/harness/relay.js';
import { startPeer, startZookeeper, type Service } from '../test/harness/services.js';
import { waitUntil } from '../src/process/wait.js';
import { median, sleep, type Benchmark } from './lib.js';

const KEY = 'bench-api-key-0123456789';
const auth = { headers: { authorization: `Bearer ${KEY}` } };
/** The quota each crossing's client gets, and the fleet's settings the bound is made of. */
const QUOTA = 2_000_000;
const SHIP_SEC = 1;
const CHECK_SEC = 1;
/** Clients in the period besides the crossing ones (rows generated in the real schema). */
const CLIENTS = 100_000;

let pg: Postgres;
let peer: Service;
let hosts: MonitorProcess[] = [];

/** The client's live allocations on a host, with coturn's rates (GET /sessions: coturn's `ps`). */
const liveOf = async (m: MonitorProcess, clientId: string) =>
  (await m.get(`/sessions?clientId=${clientId}`, auth)).body as { rate: { total: number } | null }[];

/**
 * 100,000 clients in the current month of the rollup, all under their warning threshold (a default
 * quota of 1 TB, every tenth with an override), generated server-side: the enforcer's query then
 * reads a month of a large fleet at every check.
 */
async function generate(): Promise<void> {
  await pg.query(
    `INSERT INTO turn_monitor.client_usage_monthly (month, realm, client_id, allocations, rcvb, sentb, client_bytes, hosts, host_ids)
     SELECT date_trunc('month', now() AT TIME ZONE 'UTC'), 'test.local', 'g' || i, 1 + i % 40,
            (i * 7919) % 50000000, (i * 104729) % 50000000, (i * 7919) % 50000000 + (i * 104729) % 50000000, 1, ARRAY['host-a']
       FROM generate_series(1::bigint, ${CLIENTS}) i`,
  );
  await pg.query(
    `INSERT INTO turn_monitor.client_quotas (realm, client_id, period_bytes, note)
     SELECT 'test.local', 'g' || i, 500000000 + i, 'generated' FROM generate_series(1::bigint, ${CLIENTS}, 10) i`,
  );
  await pg.query('ANALYZE turn_monitor.client_usage_monthly; ANALYZE turn_monitor.client_quotas');
}

/**
 * One crossing: a client with a 2 MB quota relays at a fixed rate (uclient -z 1 -l 200: a
 * message a millisecond, echoed) through two hosts at once. Its allocations are watched in
 * coturn's own `ps` (through GET /sessions, every 20 ms: when each is gone, and coturn's rates);
 * its bytes per host are read from PostgreSQL once the cut allocations closed. The overshoot is
 * what was relayed past the quota (bytes, and the time from the crossing, found by walking back
 * from the last cut at each host's rate, to the last allocation gone), against
 * the bound rate × (export.postgres.intervalSec + quotas.checkIntervalSec + 1 s).
 */
export const quota: Benchmark = {
  name: 'quota',
  goals: {
    overshoot_ratio: 'overshoot ÷ bound ≤ 1 (every crossing)',
    cut_ms: 'p99 (max of 10): from crossing to the last allocation gone ≤ the bound in seconds',
    check_ms: "enforcer's check with 100,000 clients in the period ≤ 200",
    query_ms: 'of it, reading usage and state',
  },
  rounds: 10,
  async setup(h: Harness) {
    let zk: Service & { connect: string };
    [pg, zk, peer] = await Promise.all([startPostgres(h), startZookeeper(h), startPeer(h)]);
    hosts = await Promise.all(
      ['a', 'b'].map((name) =>
        startMonitor(
          h,
          {
            logLevel: 'info',
            dataDir: path.join(h.dir, `data-${name}`),
            http: { apiKeys: [KEY] },
            credentials: { mode: 'secret', validitySec: 600 },
            zookeeper: { connect: zk.connect },
            export: { postgres: { url: pg.url, hostId: `host-${name}`, intervalSec: SHIP_SEC } },
            quotas: { checkIntervalSec: CHECK_SEC, defaultBytes: 1e12 },
          },
          { configFile: path.join(h.dir, `${name}.json`) },
        ),
      ),
    );
    await waitUntil(
      'a quota check ran',
      async () => (await Promise.all(hosts.map((m) => m.health()))).some((r) => r.body.quotas.lastCheckAt !== null),
      20_000,
    );
    // Stopped before the harness stops ZooKeeper and PostgreSQL (a monitor stop withdraws its node).
    h.onCleanup(async () => void (await Promise.all(hosts.map((m) => m.stop()))));
    await generate();
  },
  async round(h: Harness, round: number) {
    const clientId = `cross-${round}`;
    await pg.query(`INSERT INTO turn_monitor.client_quotas VALUES ('test.local', $1, $2, 'bench')`, [clientId, QUOTA]);
    const relays: Tracked[] = [];
    for (const m of hosts) {
      relays.push(await relayAsClient(h, m, { clientId, apiKey: KEY, peerPort: peer.port, messages: 100_000 }));
    }
    // Each host: when its allocation appeared, when the last one was gone, coturn's rates meanwhile.
    const first: (number | null)[] = hosts.map(() => null);
    const gone: (number | null)[] = hosts.map(() => null);
    const seenRates: number[][] = hosts.map(() => []);
    const deadline = Date.now() + 60_000;
    while (gone.some((g) => g === null) && Date.now() < deadline) {
      const views = await Promise.all(hosts.map((m) => liveOf(m, clientId)));
      const now = Date.now();
      views.forEach((v, i) => {
        if (v.length > 0 && first[i] === null) first[i] = now;
        if (v.length === 0 && first[i] !== null && gone[i] === null) gone[i] = now;
        const total = v.reduce((a, x) => a + (x.rate?.total ?? 0), 0);
        if (total > 0) seenRates[i].push(total);
      });
      await sleep(20);
    }
    for (const r of relays) r.child.kill('SIGKILL');
    if (gone.some((g) => g === null)) throw new Error(`${clientId}: not cut within 60 s`);
    // Every allocation of the client closed and shipped: its bytes per host.
    let perHost: number[] = [];
    await waitUntil(
      `${clientId}: closed allocations in PostgreSQL`,
      async () => {
        const rows = await pg.query<{ host_id: string; open: string; bytes: string }>(
          `SELECT host_id, count(*) FILTER (WHERE ended_at IS NULL)::text AS open, sum(rcvb + sentb)::text AS bytes
             FROM turn_monitor.allocations WHERE client_id = $1 GROUP BY host_id`,
          [clientId],
        );
        perHost = hosts.map((_, i) => Number(rows.find((r) => r.host_id === `host-${'ab'[i]}`)?.bytes ?? 0));
        return rows.length === hosts.length && rows.every((r) => r.open === '0');
      },
      30_000,
    );
    // Each host's rate: coturn's own (the median of its `ps` rates while relaying), else its bytes
    // over its allocation's lifetime (lower if uclient idled before sending: a larger overshoot).
    const rates = perHost.map((b, i) =>
      seenRates[i].length > 0 ? median(seenRates[i]) : b / Math.max(0.001, (gone[i]! - first[i]!) / 1000),
    );
    const rate = rates.reduce((a, b) => a + b, 0);
    const total = perHost.reduce((a, b) => a + b, 0);
    const overshoot = Math.max(0, total - QUOTA);
    // The crossing: walking back from the last cut, where the bytes past the quota began (each host
    // relaying at its rate until its own cut).
    const lastGone = Math.max(...(gone as number[]));
    let cross = lastGone;
    for (let left = overshoot; left > 0 && cross > Math.min(...(first as number[])); cross -= 5)
      left -= rates.reduce((a, r, i) => a + (cross <= gone[i]! ? r * 0.005 : 0), 0);
    const bound = rate * (SHIP_SEC + CHECK_SEC + 1);
    const health = (await Promise.all(hosts.map((m) => m.health()))).find((r) => r.body.quotas.enforcer)?.body.quotas;
    return {
      rate_Bps: Math.round(rate),
      overshoot_bytes: overshoot,
      bound_bytes: Math.round(bound),
      overshoot_ratio: overshoot / bound,
      overshoot_s: (lastGone - cross) / 1000,
      cut_ms: lastGone - cross,
      check_ms: health?.lastCheckMs ?? NaN,
      query_ms: health?.lastQueryMs ?? NaN,
    };
  },
};
