import type { Harness, Tracked } from './harness.js';
import type { MonitorProcess } from './monitor.js';
import { spawnUclient, startRedis } from './services.js';
import { recordTotals, STATS_API_KEY, STATS_USER, usage } from './statsdb.js';
import { waitUntil } from '../../src/process/wait.js';

/**
 * A config on the default usage source with the truth beside it: a test Redis that turnserver
 * also publishes to (an extra redis-statsdb line), recorded by an independent subscriber.
 */
export async function withTruth(h: Harness, turnserver: Record<string, unknown> = {}) {
  const redis = await startRedis(h);
  const config = {
    http: { apiKeys: [STATS_API_KEY] },
    turnserver: {
      ...turnserver,
      extraConfig: [
        `user=${STATS_USER.user}:${STATS_USER.password}`,
        `redis-statsdb="ip=127.0.0.1 port=${redis.port} dbname=0 connect_timeout=30"`,
      ],
    },
  };
  const truth = await recordTotals(h, redis.port);
  return { config, truth };
}

export const apiKey = { headers: { authorization: `Bearer ${STATS_API_KEY}` } };

/** Every allocation coturn freed is recorded `deleted` with coturn's own totals; returns the rows compared. */
export async function assertExactTotals(
  m: MonitorProcess,
  truth: Awaited<ReturnType<typeof recordTotals>>,
  equal: (a: unknown, b: unknown, msg: string) => void,
  also: () => boolean = () => true,
) {
  await waitUntil(
    'every freed allocation recorded',
    async () => {
      const rows = await usage(m);
      const freed = [...truth.deleted];
      return (
        freed.length > 0 &&
        also() &&
        freed.every((id) => rows.some((r) => r.allocationId === id && r.endReason === 'deleted'))
      );
    },
    20_000,
  );
  const rows = (await usage(m)).filter((r) => truth.deleted.has(r.allocationId));
  for (const r of rows) {
    const t = truth.totals.get(r.allocationId);
    equal([r.rcvp, r.rcvb, r.sentp, r.sentb], t?.client, `client counters of ${r.allocationId}`);
    equal([r.peerRcvp, r.peerRcvb, r.peerSentp, r.peerSentb], t?.peer, `peer counters of ${r.allocationId}`);
  }
  return rows;
}

/**
 * A steady relay as a secret-mode client: its credential from the monitor (`GET
 * /turncredential?user=`), then uclient with 200-byte messages paced by `-z 1` ms, left running.
 */
export async function relayAsClient(
  h: Harness,
  m: MonitorProcess,
  o: { clientId: string; apiKey: string; peerPort: number; messages: number },
): Promise<Tracked> {
  const res = await m.get(`/turncredential?user=${o.clientId}`, { headers: { authorization: `Bearer ${o.apiKey}` } });
  const c = res.body as { username: string; password: string };
  return spawnUclient(h, {
    turnPort: m.turnPort,
    peerPort: o.peerPort,
    user: c.username,
    password: c.password,
    messages: o.messages,
    length: 200,
    extraArgs: ['-z', '1'],
  });
}
