import { Redis } from 'ioredis';
import type { Harness } from './harness.js';
import type { MonitorProcess } from './monitor.js';

/** A static TURN user (extraConfig) and an API key for usage tests. */
export const STATS_USER = { user: 'acct', password: 'acct-password' };
export const STATS_API_KEY = 'stats-api-key-0123456789';
/** The Redis source explicitly: the default ('auto') is 'log' on coturn 4.6.1. */
export const statsConfig = {
  stats: { source: 'redis' as const },
  http: { apiKeys: [STATS_API_KEY] },
  turnserver: { extraConfig: [`user=${STATS_USER.user}:${STATS_USER.password}`] },
};

/** GET /usage with the API key, every page of it (following each page's cursor); asserts 200. */
export async function usage(m: MonitorProcess, query = ''): Promise<any[]> {
  const rows: any[] = [];
  let path = `/usage${query}`;
  for (;;) {
    const r = await m.get(path, { headers: { authorization: `Bearer ${STATS_API_KEY}` } });
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${r.text}`);
    rows.push(...r.body.rows);
    if (r.body.cursor === null) return rows;
    path = `/usage?cursor=${encodeURIComponent(r.body.cursor)}`;
  }
}

export type Totals = { client?: number[]; peer?: number[] };

/** The monitor's Redis port (its private redis-server unless redis.url was given). */
export async function monitorRedisPort(m: MonitorProcess): Promise<number> {
  return (await m.health()).body.stats.redis.port as number;
}

const counters = (msg: string) =>
  ['rcvp', 'rcvb', 'sentp', 'sentb'].map((k) => Number(new RegExp(`${k}=(\\d+)`).exec(msg)?.[1]));

/**
 * An independent subscriber recording coturn's own totals (total_traffic, total_traffic/peer)
 * per allocation id: the truth the monitor's records are compared with.
 */
export async function recordTotals(h: Harness, port: number) {
  const sub = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
  sub.on('error', () => undefined); // the monitor's Redis goes away when the test stops it
  await sub.connect();
  h.onCleanup(async () => void sub.disconnect());
  const totals = new Map<string, Totals>();
  const deleted = new Set<string>();
  sub.on('pmessage', (_p: string, channel: string, message: string) => {
    const m = /\/allocation\/(\d+)\/(status|total_traffic|total_traffic\/peer)$/.exec(channel);
    if (!m) return;
    const t = totals.get(m[1]) ?? {};
    if (m[2] === 'status' && message.startsWith('deleted')) deleted.add(m[1]);
    if (m[2] === 'total_traffic') t.client = counters(message);
    if (m[2] === 'total_traffic/peer') t.peer = counters(message);
    totals.set(m[1], t);
  });
  await sub.psubscribe('turn/*');
  return { totals, deleted, close: () => sub.disconnect() };
}

/** A publisher on the monitor's Redis (trace replays, junk). */
export async function publisher(h: Harness, port: number): Promise<Redis> {
  const pub = new Redis({ port, host: '127.0.0.1' });
  pub.on('error', () => undefined);
  h.onCleanup(async () => void pub.disconnect());
  return pub;
}
