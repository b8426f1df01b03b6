import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { ALLOCATION_EVENT_ID } from './outbox-sql.js';

export interface EndpointSummary {
  url: string;
  configured: boolean;
  pending: number;
  failed: number;
  oldestPendingAt: string | null;
  /** The last error of a pending delivery that has been tried (why it waits). */
  lastError: string | null;
}

export interface FailedEvent {
  id: string;
  type: string;
  endpoint: string;
  createdAt: string;
  failedAt: string;
  attempts: number;
  error: string | null;
}

/** The events with a failed delivery, by id (an allocation event's id is made from its record). */
const FAILED_IDS = `SELECT DISTINCT ev.seq AS seq, coalesce(ev.id, ${ALLOCATION_EVENT_ID}) AS id
  FROM webhook_deliveries d JOIN webhook_events ev ON ev.seq = d.event_seq LEFT JOIN allocations a ON a.id = ev.alloc_id
  WHERE d.status = 'failed'`;

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * `turn-monitor webhooks`: the outbox of usage.db read and replayed directly (works while the
 * monitor is stopped; a running one picks replayed events up at its next look, within 100 ms).
 * A replay queues the same event again, same body and same `webhook-id`: receivers deduplicate.
 */
export class OutboxAdmin {
  private readonly db: Database.Database;

  constructor(file: string) {
    if (!existsSync(file)) throw new Error(`no usage database at ${file}`);
    this.db = new Database(file, { fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
    const has = this.db
      .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'webhook_deliveries'`)
      .get();
    if (!has) {
      this.db.close();
      throw new Error(`no webhook outbox in ${file}: the monitor has not run with webhooks.endpoints yet`);
    }
  }

  /** Every endpoint that is configured or still has events, with its figures. */
  summary(configured: readonly string[]): EndpointSummary[] {
    const rows = this.db
      .prepare(
        `SELECT e.url AS url,
                (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') AS pending,
                (SELECT count(*) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'failed') AS failed,
                (SELECT min(queued_at) FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending') AS oldest,
                (SELECT last_error FROM webhook_deliveries d WHERE d.endpoint_id = e.id AND d.status = 'pending'
                    AND last_error IS NOT NULL ORDER BY next_at DESC LIMIT 1) AS lastError
           FROM webhook_endpoints e ORDER BY e.id`,
      )
      .all() as { url: string; pending: number; failed: number; oldest: number | null; lastError: string | null }[];
    return rows
      .map((r) => ({
        url: r.url,
        configured: configured.includes(r.url),
        pending: r.pending,
        failed: r.failed,
        oldestPendingAt: iso(r.oldest),
        lastError: r.lastError,
      }))
      .filter((r) => r.configured || r.pending > 0 || r.failed > 0);
  }

  /** Failed deliveries, oldest first (of one endpoint when given). */
  failed(endpoint: string | null = null): FailedEvent[] {
    const rows = this.db
      .prepare(
        `SELECT coalesce(ev.id, ${ALLOCATION_EVENT_ID}) AS id, ev.type AS type, e.url AS endpoint,
                ev.created_at AS createdAt, d.next_at AS failedAt, d.attempts AS attempts, d.last_error AS error
           FROM webhook_deliveries d JOIN webhook_events ev ON ev.seq = d.event_seq JOIN webhook_endpoints e ON e.id = d.endpoint_id
           LEFT JOIN allocations a ON a.id = ev.alloc_id
          WHERE d.status = 'failed' AND (@endpoint IS NULL OR e.url = @endpoint)
          ORDER BY d.event_seq`,
      )
      .all({ endpoint }) as (Omit<FailedEvent, 'createdAt' | 'failedAt'> & { createdAt: number; failedAt: number })[];
    return rows.map((r) => ({ ...r, createdAt: iso(r.createdAt)!, failedAt: iso(r.failedAt)! }));
  }

  /**
   * Queue failed deliveries again, now, with a fresh maxAge: of one event (`id`) or all of them,
   * of the given endpoints only. Returns how many deliveries were queued.
   */
  replay(opts: { id?: string; endpoints: readonly string[] }): number {
    if (opts.endpoints.length === 0) return 0;
    const now = Date.now();
    const marks = opts.endpoints.map(() => '?').join(', ');
    const byId = opts.id === undefined ? '' : 'AND event_seq IN (SELECT seq FROM failed_ids WHERE id = ?)';
    const args = opts.id === undefined ? [now, now, ...opts.endpoints] : [now, now, ...opts.endpoints, opts.id];
    return this.db
      .prepare(
        `WITH failed_ids AS (${FAILED_IDS})
         UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_at = ?, queued_at = ?, last_error = NULL
          WHERE status = 'failed' AND endpoint_id IN (SELECT id FROM webhook_endpoints WHERE url IN (${marks})) ${byId}`,
      )
      .run(...args).changes;
  }

  /** Whether a failed delivery of an event of this id is in the outbox. */
  has(id: string): boolean {
    return (
      this.db.prepare(`WITH failed_ids AS (${FAILED_IDS}) SELECT 1 FROM failed_ids WHERE id = ?`).get(id) !== undefined
    );
  }

  close(): void {
    this.db.close();
  }
}
