import type pg from 'pg';
import { COUNTER_COLUMNS, monthlyFromHourly, rollupFromRaw, sameRealm, SCHEMA, unionHostIds } from './pg-schema.js';
import { utcWall } from './fleet-reader.js';

/**
 * `turn-monitor fleet-check`: is the billing rollup what the raw rows say?
 *
 * What is exact. The rollup puts each shipped difference in the hour of the record's latest event
 * then, so an allocation's contributions all lie in the hours from its start to its last event
 * (its span). Over a window no span crosses, a client's rollup therefore sums to exactly its
 * allocations' counters; a recomputation "hour by hour" would not be exact (the rollup spreads a
 * long call over the hours it relayed in, the raw row only has its totals). So, per client, the
 * window [from, to) is widened until no allocation of the client crosses its edges (a call
 * running over `from` pulls it back to that call's start, and so on), and the client's rollup
 * over its widened window is compared with the counters (and count, and incomplete ones) of its
 * allocations in it. Also checked: each month of client_usage_monthly sums its hours (its hosts
 * are theirs), and each hour's `hosts` counts its host ids.
 *
 * Which hours. For a client that differs, an hour is reported when a counter lies outside what
 * its allocations allow there: at least what the allocations lasting only that hour relayed, at
 * most what every allocation whose span covers it relayed. A change inside those bounds is
 * reported as the client's window without hours.
 *
 * --repair rewrites, under an EXCLUSIVE lock on the rollup tables (shippers wait), each differing
 * client's hours in its window from the raw rows (each allocation in the hour of its last event,
 * as the v1 migration does: totals exact, the spread within a long call lost), the months they
 * touch, and the months and hours found inconsistent.
 *
 * Limits: raw rows dropped by retention are not there to compare with (a window must start after
 * the oldest raw month kept); a call longer than the retention whose month was dropped can show
 * its client as differing near the window's start.
 */

export interface CheckOptions {
  from: number;
  to: number;
  repair: boolean;
}

type Sums = Record<string, number>;
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- rows as pg returns them (text, numbers, json)
type PgRow = Record<string, any>;

export interface ClientFinding {
  realm: string | null;
  clientId: string;
  /** The client's widened window. */
  from: string;
  to: string;
  rollup: Sums;
  raw: Sums;
  /** Hours (ISO) whose rollup lies outside what the allocations allow; empty: somewhere in the window. */
  hours: string[];
}

export interface MonthFinding {
  realm: string | null;
  clientId: string;
  month: string;
  monthly: Sums | null;
  hours: Sums | null;
}

export interface HostsFinding {
  realm: string | null;
  clientId: string;
  hour: string;
  hosts: number;
  /** How many host ids the hour lists. */
  hostIds: number;
}

export interface CheckReport {
  from: string;
  to: string;
  /** Clients compared. */
  clients: number;
  differ: ClientFinding[];
  months: MonthFinding[];
  hosts: HostsFinding[];
  repaired: boolean;
}

const SUMS = ['allocations', ...COUNTER_COLUMNS, 'incomplete'];
const rawSums = ['count(*)', ...COUNTER_COLUMNS.map((c) => `sum(a.${c})`), 'count(*) FILTER (WHERE NOT a.complete)'];
const HOUR = (col: string) => `date_trunc('hour', ${col} AT TIME ZONE 'UTC')`;
const iso = (wall: string) => `${wall.replace(' ', 'T')}Z`;
const asSums = (r: Record<string, unknown> | null): Sums | null =>
  r === null ? null : Object.fromEntries(SUMS.map((c) => [c, Number(r[c] ?? 0)]));
const W = 'fleet_check_window';

/** The allocations of the windowed clients whose spans meet the client's window (`touch`) or lie in it. */
const windowed = (mode: 'touch' | 'inside') => `
  ${W} w JOIN ${SCHEMA}.allocations a ON a.client_id = w.client_id AND ${sameRealm('a', 'w')} AND a.kind = 'allocation'
   AND ${
     mode === 'touch'
       ? `${HOUR('a.started_at')} < w.t AND ${HOUR('a.last_event_at')} >= w.f`
       : `${HOUR('a.started_at')} >= w.f AND ${HOUR('a.last_event_at')} < w.t`
   }`;

export async function fleetCheck(client: pg.Client, opts: CheckOptions): Promise<CheckReport> {
  const F = utcWall(Math.floor(opts.from / 3_600_000) * 3_600_000).slice(0, 19);
  const T = utcWall(Math.ceil(opts.to / 3_600_000) * 3_600_000).slice(0, 19);
  // One snapshot: raw rows and rollup change together (one statement per batch), so any snapshot
  // is consistent. Repairing, shippers wait on the rollup tables until the rewrite commits.
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  try {
    if (opts.repair)
      await client.query(`LOCK TABLE ${SCHEMA}.client_usage_hourly, ${SCHEMA}.client_usage_monthly IN EXCLUSIVE MODE`);
    const dropped = await client.query<{ m: string | null }>(
      `SELECT to_char(max(month) + interval '1 month', 'YYYY-MM-DD HH24:MI:SS') AS m FROM ${SCHEMA}.dropped_partitions`,
    );
    const kept = dropped.rows[0]?.m;
    if (kept && F < kept)
      throw new Error(
        `--from ${iso(F)} is before the oldest raw rows kept (${iso(kept)}): older ones were dropped by retention`,
      );
    await client.query(
      `CREATE TEMP TABLE ${W} (realm text, client_id text NOT NULL, f timestamp, t timestamp) ON COMMIT DROP`,
    );
    await client.query(
      `INSERT INTO ${W} (realm, client_id, f, t)
       SELECT realm, client_id, $1::timestamp, $2::timestamp FROM (
         SELECT realm, client_id FROM ${SCHEMA}.client_usage_hourly WHERE hour >= $1::timestamp AND hour < $2::timestamp
         UNION
         SELECT realm, client_id FROM ${SCHEMA}.allocations
          WHERE kind = 'allocation' AND started_at < ($2::timestamp AT TIME ZONE 'UTC')
            AND last_event_at >= ($1::timestamp AT TIME ZONE 'UTC')) c`,
      [F, T],
    );
    // Widen each client's window until none of its allocations crosses an edge.
    for (let round = 0; round < 50; round++) {
      const r = await client.query(
        `WITH s AS (
           SELECT w.realm, w.client_id, min(${HOUR('a.started_at')}) AS lo, max(${HOUR('a.last_event_at')}) + interval '1 hour' AS hi
             FROM ${windowed('touch')} GROUP BY w.realm, w.client_id)
         UPDATE ${W} w SET f = least(w.f, s.lo), t = greatest(w.t, s.hi) FROM s
          WHERE s.client_id = w.client_id AND ${sameRealm('s', 'w')} AND (s.lo < w.f OR s.hi > w.t)`,
      );
      if (r.rowCount === 0) break;
    }
    const clients = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${W}`)).rows[0].n);
    const { rows } = await client.query<PgRow>(
      `WITH r AS (SELECT w.realm, w.client_id, ${rawSums.map((s, i) => `${s} AS ${SUMS[i]}`).join(', ')}
                    FROM ${windowed('inside')} GROUP BY w.realm, w.client_id),
            u AS (SELECT w.realm, w.client_id, ${SUMS.map((c) => `sum(u.${c}) AS ${c}`).join(', ')}
                    FROM ${W} w JOIN ${SCHEMA}.client_usage_hourly u
                      ON u.client_id = w.client_id AND ${sameRealm('u', 'w')} AND u.hour >= w.f AND u.hour < w.t
                   GROUP BY w.realm, w.client_id)
       SELECT w.realm, w.client_id, to_char(w.f, 'YYYY-MM-DD HH24:MI:SS') AS f, to_char(w.t, 'YYYY-MM-DD HH24:MI:SS') AS t,
              row_to_json(r) AS raw, row_to_json(u) AS rollup
         FROM ${W} w
         LEFT JOIN r ON r.client_id = w.client_id AND ${sameRealm('r', 'w')}
         LEFT JOIN u ON u.client_id = w.client_id AND ${sameRealm('u', 'w')}
        WHERE ${SUMS.map((c) => `coalesce(r.${c}, 0) <> coalesce(u.${c}, 0)`).join(' OR ')}
        ORDER BY w.realm, w.client_id`,
    );
    const differ: ClientFinding[] = [];
    for (const r of rows) {
      differ.push({
        realm: r.realm,
        clientId: r.client_id,
        from: iso(r.f),
        to: iso(r.t),
        rollup: asSums(r.rollup) ?? asSums({})!,
        raw: asSums(r.raw) ?? asSums({})!,
        hours: await outOfBounds(client, r.realm, r.client_id, r.f, r.t),
      });
    }
    const months = await monthFindings(client, F, T);
    const hosts = await hostsFindings(client, F, T);
    if (opts.repair && differ.length + months.length + hosts.length > 0) {
      await repair(client, differ, months, hosts);
    }
    await client.query('COMMIT');
    return { from: iso(F), to: iso(T), clients, differ, months, hosts, repaired: opts.repair };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Hours of one client's window whose rollup lies outside what its allocations allow. */
async function outOfBounds(client: pg.Client, realm: string | null, clientId: string, f: string, t: string) {
  const key = `client_id = $1 AND coalesce(realm, '') = coalesce($2, '') AND (realm IS NULL) = ($2::text IS NULL)`;
  const hours = await client.query<PgRow>(
    `SELECT to_char(hour, 'YYYY-MM-DD HH24:MI:SS') AS hour, ${COUNTER_COLUMNS.join(', ')}
       FROM ${SCHEMA}.client_usage_hourly WHERE ${key} AND hour >= $3::timestamp AND hour < $4::timestamp`,
    [clientId, realm, f, t],
  );
  const allocs = await client.query<PgRow>(
    `SELECT to_char(${HOUR('started_at')}, 'YYYY-MM-DD HH24:MI:SS') AS lo,
            to_char(${HOUR('last_event_at')}, 'YYYY-MM-DD HH24:MI:SS') AS hi, ${COUNTER_COLUMNS.join(', ')}
       FROM ${SCHEMA}.allocations WHERE kind = 'allocation' AND ${key}
        AND ${HOUR('started_at')} >= $3::timestamp AND ${HOUR('last_event_at')} < $4::timestamp`,
    [clientId, realm, f, t],
  );
  const byHour = new Map<string, PgRow>(hours.rows.map((h) => [h.hour, h]));
  // Hours where single-hour allocations must show up, even without a rollup row.
  for (const a of allocs.rows) if (a.lo === a.hi && !byHour.has(a.lo)) byHour.set(a.lo, { hour: a.lo });
  const out: string[] = [];
  for (const [hour, h] of [...byHour].sort(([a], [b]) => a.localeCompare(b))) {
    const bad = COUNTER_COLUMNS.some((c) => {
      let lower = 0;
      let upper = 0;
      for (const a of allocs.rows) {
        if (a.lo <= hour && hour <= a.hi) upper += Number(a[c]);
        if (a.lo === hour && a.hi === hour) lower += Number(a[c]);
      }
      const v = Number(h[c] ?? 0);
      return v < lower || v > upper;
    });
    if (bad) out.push(iso(hour));
  }
  return out;
}

/** Months overlapping [F, T) whose client_usage_monthly row is not the sum of its hours (and their hosts). */
async function monthFindings(client: pg.Client, F: string, T: string): Promise<MonthFinding[]> {
  const range = (col: string) =>
    `${col} >= date_trunc('month', $1::timestamp) AND ${col} < date_trunc('month', $2::timestamp - interval '1 microsecond') + interval '1 month'`;
  const { rows } = await client.query<PgRow>(
    `WITH h AS (SELECT date_trunc('month', hour) AS month, realm, client_id, ${SUMS.map((c) => `sum(${c}) AS ${c}`).join(', ')},
                       cardinality(${unionHostIds()}) AS hosts
                  FROM ${SCHEMA}.client_usage_hourly WHERE ${range('hour')} GROUP BY 1, realm, client_id),
          m AS (SELECT * FROM ${SCHEMA}.client_usage_monthly WHERE ${range('month')}),
          j AS (SELECT coalesce(m.month, h.month) AS month, coalesce(m.realm, h.realm) AS realm,
                       coalesce(m.client_id, h.client_id) AS client_id, row_to_json(m) AS monthly, row_to_json(h) AS hours,
                       coalesce(m.hosts, 0) <> coalesce(h.hosts, 0) AS hosts_differ,
                       ${SUMS.map((c) => `coalesce(m.${c}, 0) <> coalesce(h.${c}, 0)`).join(' OR ')} AS sums_differ
                  FROM m FULL JOIN h ON h.month = m.month AND h.client_id = m.client_id AND ${sameRealm('h', 'm')})
     SELECT to_char(j.month, 'YYYY-MM') AS month, j.realm, j.client_id, j.monthly, j.hours
       FROM j WHERE j.sums_differ OR j.hosts_differ ORDER BY 1, 2, 3`,
    [F, T],
  );
  return rows.map((r) => ({
    realm: r.realm,
    clientId: r.client_id,
    month: r.month,
    monthly: r.monthly === null ? null : { ...asSums(r.monthly)!, hosts: Number(r.monthly.hosts) },
    hours: r.hours === null ? null : { ...asSums(r.hours)!, hosts: Number(r.hours.hosts) },
  }));
}

async function hostsFindings(client: pg.Client, F: string, T: string): Promise<HostsFinding[]> {
  const { rows } = await client.query<PgRow>(
    `SELECT to_char(hour, 'YYYY-MM-DD HH24:MI:SS') AS hour, realm, client_id, hosts, cardinality(host_ids) AS host_ids
       FROM ${SCHEMA}.client_usage_hourly
      WHERE hour >= $1::timestamp AND hour < $2::timestamp AND hosts <> cardinality(host_ids)
      ORDER BY 1, 2, 3`,
    [F, T],
  );
  return rows.map((r) => ({
    realm: r.realm,
    clientId: r.client_id,
    hour: iso(r.hour),
    hosts: Number(r.hosts),
    hostIds: Number(r.host_ids),
  }));
}

/** Rewrite what differs from the raw rows (clients), from the hours (months) or the host ids (hosts). */
async function repair(client: pg.Client, differ: ClientFinding[], months: MonthFinding[], hosts: HostsFinding[]) {
  // The differing clients' windows only.
  await client.query(
    `DELETE FROM ${W} w WHERE NOT EXISTS (SELECT 1 FROM jsonb_to_recordset($1::jsonb) AS d(realm text, "clientId" text)
       WHERE d."clientId" = w.client_id AND coalesce(d.realm, '') = coalesce(w.realm, '') AND (d.realm IS NULL) = (w.realm IS NULL))`,
    [JSON.stringify(differ.map((d) => ({ realm: d.realm, clientId: d.clientId })))],
  );
  const inWindow = (t: string) =>
    `EXISTS (SELECT 1 FROM ${W} w WHERE w.client_id = ${t}.client_id AND ${sameRealm('w', t)} AND ${t}.hour >= w.f AND ${t}.hour < w.t)`;
  if (differ.length > 0) {
    await client.query(`DELETE FROM ${SCHEMA}.client_usage_hourly u WHERE ${inWindow('u')}`);
    // The allocations inside each window, each in the hour of its last event.
    const inside = `EXISTS (SELECT 1 FROM ${W} w WHERE w.client_id = a.client_id AND ${sameRealm('w', 'a')}
                      AND ${HOUR('a.started_at')} >= w.f AND ${HOUR('a.last_event_at')} < w.t)`;
    for (const stmt of rollupFromRaw(inside)) await client.query(stmt);
  }
  // Months: the differing clients' months in their windows, and the months found inconsistent.
  await client.query(
    `CREATE TEMP TABLE fleet_check_months ON COMMIT DROP AS
     SELECT DISTINCT m.month, w.realm, w.client_id FROM ${W} w,
            LATERAL generate_series(date_trunc('month', w.f), w.t - interval '1 microsecond', interval '1 month') AS m(month)
     UNION
     SELECT to_timestamp(d.month, 'YYYY-MM')::timestamp, d.realm, d."clientId"
       FROM jsonb_to_recordset($1::jsonb) AS d(month text, realm text, "clientId" text)`,
    [JSON.stringify(months.map((m) => ({ month: m.month, realm: m.realm, clientId: m.clientId })))],
  );
  const monthKey = (t: string, col: string) =>
    `EXISTS (SELECT 1 FROM fleet_check_months k WHERE k.client_id = ${t}.client_id AND ${sameRealm('k', t)} AND k.month = ${col})`;
  await client.query(`DELETE FROM ${SCHEMA}.client_usage_monthly m WHERE ${monthKey('m', 'm.month')}`);
  await client.query(monthlyFromHourly(monthKey('x', `date_trunc('month', x.hour)`)));
  for (const h of hosts)
    await client.query(
      `UPDATE ${SCHEMA}.client_usage_hourly u SET hosts = cardinality(host_ids)
        WHERE u.hour = $1::timestamp AND u.client_id = $2 AND coalesce(u.realm, '') = coalesce($3, '') AND (u.realm IS NULL) = ($3::text IS NULL)`,
      [h.hour.replace('T', ' ').replace('Z', ''), h.clientId, h.realm],
    );
}
