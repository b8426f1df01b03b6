import { createHash, randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { patternMatches, WEBHOOK_EVENT_TYPES, type WebhookEventType } from '../config/webhooks.js';
import { eventBody, EventWriter } from './event-writer.js';
import { hostTag, NOW_MS, TABLES, TRIGGER_NAMES, triggerSql } from './outbox-sql.js';

export interface OutboxEndpoint {
  /** The endpoint's name (endpointName(url)): its key in usage.db. */
  name: string;
  events: readonly string[];
}

export interface RecordOptions {
  /** A natural key: the same key makes the same event id, so writing it twice sends it once. */
  key?: string;
  /** Events of one order key are sent in order, per endpoint (`host`, `turnserver`, `client:alice`). */
  order?: string;
  /** When it happened (epoch ms); default now. */
  at?: number;
}

/** What no longer configured endpoints' pending deliveries become (replayable once it is back). */
const REMOVED = 'endpoint no longer configured';

/**
 * The monitor's side of the outbox in usage.db (see outbox-sql.ts): installs the tables,
 * subscriptions and triggers at start, and writes the events that belong to no record (host,
 * turnserver, certificate, client) when they happen. The triggers' queue is turned into events,
 * and everything delivered, by the delivery thread.
 */
export class WebhookOutbox {
  private readonly db: Database.Database;
  private readonly tag: string;
  /** Endpoint ids by name, as stored. */
  readonly endpointIds = new Map<string, number>();
  private readonly subscribed = new Set<string>();
  private readonly writeEvent: (id: string, type: string, order: string | null, at: number, body: string) => boolean;

  /** `file` must already hold the stats schema (the stats subsystem starts first). */
  constructor(
    file: string,
    private readonly hostId: string,
    endpoints: readonly OutboxEndpoint[],
  ) {
    this.db = new Database(file, { fileMustExist: true });
    this.db.pragma('busy_timeout = 5000');
    this.tag = hostTag(hostId);
    this.db.transaction(() => this.install(endpoints))();
    const writer = new EventWriter(this.db);
    this.writeEvent = this.db.transaction(
      (id: string, type: string, order: string | null, at: number, body: string) =>
        writer.write({ id, type, order, at, body }) !== null,
    );
  }

  private install(endpoints: readonly OutboxEndpoint[]): void {
    const db = this.db;
    db.exec(TABLES);
    const upsert = db.prepare(`INSERT INTO webhook_endpoints (url) VALUES (?) ON CONFLICT (url) DO NOTHING`);
    const idOf = db.prepare(`SELECT id FROM webhook_endpoints WHERE url = ?`).pluck();
    db.exec(`DELETE FROM webhook_subscriptions`);
    const subscribe = db.prepare(`INSERT OR IGNORE INTO webhook_subscriptions (type, endpoint_id) VALUES (?, ?)`);
    for (const e of endpoints) {
      upsert.run(e.name);
      const id = idOf.get(e.name) as number;
      this.endpointIds.set(e.name, id);
      for (const type of WEBHOOK_EVENT_TYPES) {
        if (!e.events.some((p) => patternMatches(p, type))) continue;
        subscribe.run(type, id);
        this.subscribed.add(type);
      }
    }
    // Whatever waited for an endpoint taken out of the config: failed (replayable), not lost.
    const ids = [...this.endpointIds.values()];
    db.prepare(
      `UPDATE webhook_deliveries SET status = 'failed', next_at = ${NOW_MS}, last_error = ?
        WHERE status = 'pending' AND endpoint_id NOT IN (${ids.map(() => '?').join(', ') || 'NULL'})`,
    ).run(REMOVED, ...ids);
    db.prepare(
      `INSERT INTO webhook_meta (key, value) VALUES ('host_tag', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ).run(this.tag);
    for (const name of TRIGGER_NAMES) db.exec(`DROP TRIGGER IF EXISTS ${name}`);
    db.exec(triggerSql({ started: this.wants('allocation.started'), ended: this.wants('allocation.ended') }));
  }

  /** Webhooks turned off (no endpoint): the triggers go, so stats writes cost nothing extra. Kept: the tables. */
  static uninstall(file: string): void {
    const db = new Database(file, { fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      const present = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'webhook_%'`);
      for (const name of present.pluck().all() as string[]) db.exec(`DROP TRIGGER IF EXISTS ${name}`);
    } finally {
      db.close();
    }
  }

  /** Whether any endpoint takes this type. */
  wants(type: WebhookEventType): boolean {
    return this.subscribed.has(type);
  }

  /**
   * Write one event (and a delivery per endpoint taking it) now. Returns its id, or null when no
   * endpoint takes the type or an event of the same key exists already.
   */
  record(type: WebhookEventType, data: Record<string, unknown>, opts: RecordOptions = {}): string | null {
    if (!this.wants(type)) return null;
    const at = opts.at ?? Date.now();
    const suffix =
      opts.key === undefined
        ? randomBytes(12).toString('hex')
        : createHash('sha256').update(`${type}\n${opts.key}`).digest('hex').slice(0, 24);
    const id = `evt_${this.tag}_${suffix}`;
    const body = eventBody(type, id, at, this.hostId, data);
    return this.writeEvent(id, type, opts.order ?? null, at, body) ? id : null;
  }

  close(): void {
    this.db.close();
  }
}
