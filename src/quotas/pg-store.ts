import pg from 'pg';
import { migrate, SCHEMA } from '../export/pg-schema.js';
import type { OverUsage, StateRow } from './plan.js';
import { CLIENT_ID_PATTERN, type BadRow, type CheckInput, type QuotaStore } from './store.js';

/** The advisory lock whose holder is the fleet's one enforcer. */
export const ENFORCER_LOCK = 'turn-monitor:quota-enforcer';
const TIMEOUT_MS = 5000;

/** A quota from an override row: a row with a bad value is skipped (the default applies). */
const QUOTA = `CASE WHEN q.client_id IS NOT NULL AND (q.period_bytes IS NULL OR q.period_bytes >= 0)
                    AND q.client_id ~ '${CLIENT_ID_PATTERN}' THEN q.period_bytes ELSE $2::bigint END`;

/**
 * Usage per (realm, client) in the period from the rollup the shippers maintain: the monthly row
 * itself, or a day's hours. It holds every record shipped, open allocations with their running
 * counters as of their host's last ship (`export.postgres.intervalSec`), so the not-yet-shipped
 * part of any host is at most one interval old (plus the stats checkpoint).
 */
function usageSql(period: CheckInput['period']): string {
  return period === 'month'
    ? `SELECT coalesce(realm, '') AS realm, client_id, client_bytes AS used
         FROM ${SCHEMA}.client_usage_monthly WHERE month = $1::timestamp`
    : `SELECT coalesce(realm, '') AS realm, client_id, sum(client_bytes)::bigint AS used
         FROM ${SCHEMA}.client_usage_hourly
        WHERE hour >= $1::timestamp AND hour < $1::timestamp + interval '1 day'
        GROUP BY 1, client_id`;
}

const utc = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

/**
 * The fleet's quota store in PostgreSQL, on a connection of its own. The enforcer is elected by
 * a session-level advisory lock on this connection (pg_try_advisory_lock, tried every check):
 * quotas cannot be enforced without PostgreSQL anyway, so the lock's holder is by construction a
 * monitor that can read usage and write state, and a fleet needs no ZooKeeper for it. The lock
 * goes with the session: a monitor killed (kill -9) closes its socket and PostgreSQL releases
 * the lock at once; a host that vanishes from the network is noticed by TCP keepalives set on the
 * session (5 s idle, 2 s × 3 probes), after which the next monitor's try succeeds.
 */
export class PgQuotaStore implements QuotaStore {
  readonly kind = 'fleet' as const;
  private client: pg.Client | null = null;
  private connecting: Promise<pg.Client> | null = null;
  private leading = false;

  constructor(
    private readonly url: string,
    private readonly hostId: string,
  ) {}

  private connect(): Promise<pg.Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= (async () => {
      const client = new pg.Client({
        connectionString: this.url,
        connectionTimeoutMillis: TIMEOUT_MS,
        query_timeout: TIMEOUT_MS,
        keepAlive: true,
        application_name: `turn-monitor quotas ${this.hostId}`.slice(0, 63),
      });
      client.on('error', () => this.drop(client));
      client.on('end', () => this.drop(client));
      try {
        await client.connect();
        await client.query(
          `SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2; SET tcp_keepalives_count = 3`,
        );
        await migrate(client);
      } catch (err) {
        client.end().catch(() => undefined);
        throw err;
      }
      this.client = client;
      return client;
    })().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private drop(which: pg.Client | null = this.client): void {
    if (!which || which !== this.client) return;
    this.client = null;
    this.leading = false;
    which.end().catch(() => undefined);
  }

  reset(): void {
    this.drop();
  }

  async lead(): Promise<boolean> {
    const c = await this.connect();
    if (this.leading) return true;
    const r = await c.query<{ ok: boolean }>('SELECT pg_try_advisory_lock(hashtext($1)) AS ok', [ENFORCER_LOCK]);
    this.leading = r.rows[0]?.ok === true;
    return this.leading;
  }

  async over(input: CheckInput): Promise<OverUsage[]> {
    const c = await this.connect();
    const r = await c.query<{ realm: string; client_id: string; used: string; quota: string }>(
      `SELECT u.realm, u.client_id, u.used::text AS used, x.quota::text AS quota
         FROM (${usageSql(input.period)}) u
         LEFT JOIN ${SCHEMA}.client_quotas q ON q.realm = u.realm AND q.client_id = u.client_id
         CROSS JOIN LATERAL (SELECT ${QUOTA} AS quota) x
        WHERE x.quota IS NOT NULL AND u.used >= $3::float8 * x.quota`,
      [utc(input.start), input.defaultBytes, input.warnAt],
    );
    return r.rows.map((x) => ({ realm: x.realm, clientId: x.client_id, used: Number(x.used), quota: Number(x.quota) }));
  }

  async states(): Promise<StateRow[]> {
    const c = await this.connect();
    const r = await c.query<Record<string, unknown>>(
      `SELECT realm, client_id, (extract(epoch FROM period_start) * 1000)::bigint::text AS period_start, warned, exceeded,
              used_bytes::text AS used, quota_bytes::text AS quota FROM ${SCHEMA}.quota_state`,
    );
    return r.rows.map((x) => ({
      realm: x.realm as string,
      clientId: x.client_id as string,
      periodStart: Number(x.period_start),
      warned: x.warned as boolean,
      exceeded: x.exceeded as boolean,
      used: x.used === null ? null : Number(x.used),
      quota: x.quota === null ? null : Number(x.quota),
    }));
  }

  async save(rows: StateRow[], drop: { realm: string; clientId: string }[]): Promise<void> {
    const c = await this.connect();
    for (const s of rows)
      await c.query(
        `INSERT INTO ${SCHEMA}.quota_state AS t (realm, client_id, period_start, warned, exceeded, used_bytes, quota_bytes)
         VALUES ($1, $2, $3::timestamp, $4, $5, $6, $7)
         ON CONFLICT (realm, client_id) DO UPDATE SET period_start = excluded.period_start, warned = excluded.warned,
            exceeded = excluded.exceeded, used_bytes = excluded.used_bytes, quota_bytes = excluded.quota_bytes,
            updated_at = now()`,
        [s.realm, s.clientId, utc(s.periodStart), s.warned, s.exceeded, s.used, s.quota],
      );
    for (const d of drop)
      await c.query(`DELETE FROM ${SCHEMA}.quota_state WHERE realm = $1 AND client_id = $2`, [d.realm, d.clientId]);
  }

  async badRows(): Promise<BadRow[]> {
    const c = await this.connect();
    const r = await c.query<{ realm: string; client_id: string; why: string }>(
      `SELECT realm, client_id,
              CASE WHEN client_id !~ '${CLIENT_ID_PATTERN}' THEN 'client_id is not a client id'
                   ELSE 'period_bytes is negative' END AS why
         FROM ${SCHEMA}.client_quotas
        WHERE client_id !~ '${CLIENT_ID_PATTERN}' OR period_bytes < 0
        ORDER BY realm, client_id LIMIT 10`,
    );
    return r.rows.map((x) => ({ realm: x.realm, clientId: x.client_id, why: x.why }));
  }

  async usageOf(realm: string, clientId: string, input: CheckInput): Promise<{ used: number; quota: number | null }> {
    const c = await this.connect();
    const r = await c.query<{ used: string | null; quota: string | null }>(
      `SELECT (SELECT sum(u.used)::text FROM (${usageSql(input.period)}) u WHERE u.realm = $3 AND u.client_id = $4) AS used,
              (SELECT ${QUOTA} FROM (SELECT 1) one
                 LEFT JOIN ${SCHEMA}.client_quotas q ON q.realm = $3 AND q.client_id = $4)::text AS quota`,
      [utc(input.start), input.defaultBytes, realm, clientId],
    );
    const row = r.rows[0];
    return { used: Number(row?.used ?? 0), quota: row?.quota == null ? null : Number(row.quota) };
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.leading = false;
    await c?.end().catch(() => undefined);
  }
}
