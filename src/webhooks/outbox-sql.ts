import { createHash } from 'node:crypto';

/**
 * The webhook outbox in usage.db: tables, and the triggers that write an allocation's events in
 * the very transaction that stores the change (so no record is committed without its event).
 *
 * - `webhook_queue`: what the triggers write: (type, the allocation's row, time), nothing more,
 *   so the ingest transaction pays one small insert per event into a table with no index. (The
 *   JSON built in the trigger, or the fan-out to endpoints done there, cost several times the
 *   record's own write.) The delivery thread moves queue rows into `webhook_events` with their
 *   deliveries, in queue order, deleting them in the same transaction: a change's event is in
 *   the queue or in the events, never in neither.
 * - `webhook_events`: one row per event, `seq` ordering them (AUTOINCREMENT: never reused). An
 *   allocation event keeps only its allocation's row id: its id (host tag, run, allocation id,
 *   type) and body (the stored row, made by the function that makes `usage --format json`)
 *   are made when it is sent, so `allocation.ended` is the stored record. Events of no record
 *   (host, turnserver, certificate, client) carry their id (unique: written twice, kept once)
 *   and body.
 * - `webhook_deliveries`: one row per (event, endpoint) with that endpoint's state (pending or
 *   failed, attempts, next attempt, last error). Per endpoint rather than per event, so that a
 *   dead endpoint's backlog, its retries and its failures are its own: the other endpoints'
 *   rows are untouched and their queries never read it. A delivered row is deleted; the event
 *   goes with its last delivery.
 * - `after_seq`: the event this one must wait for, per endpoint, while it is pending there
 *   (`allocation.ended` after its `allocation.started`; host, turnserver, certificate and client
 *   events after the previous one of their kind): order where order matters, concurrency
 *   everywhere else.
 * - `webhook_subscriptions`: (type, endpoint) pairs from the config, rewritten at every start.
 */

export const NOW_MS = `CAST(unixepoch('subsec') * 1000 AS INTEGER)`;

export const TABLES = `
  CREATE TABLE IF NOT EXISTS webhook_meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS webhook_endpoints (id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    type TEXT NOT NULL,
    endpoint_id INTEGER NOT NULL,
    PRIMARY KEY (type, endpoint_id)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS webhook_queue (
    seq INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    alloc_id INTEGER NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE TABLE IF NOT EXISTS webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    alloc_id INTEGER,
    id TEXT,
    okey TEXT,
    created_at INTEGER NOT NULL,
    body TEXT
  );
  CREATE UNIQUE INDEX IF NOT EXISTS webhook_events_id ON webhook_events (id) WHERE id IS NOT NULL;
  CREATE INDEX IF NOT EXISTS webhook_events_okey ON webhook_events (okey, seq) WHERE okey IS NOT NULL;
  CREATE INDEX IF NOT EXISTS webhook_events_alloc ON webhook_events (alloc_id) WHERE alloc_id IS NOT NULL;
  CREATE TABLE IF NOT EXISTS webhook_deliveries (
    event_seq INTEGER NOT NULL,
    endpoint_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    next_at INTEGER NOT NULL,
    queued_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    after_seq INTEGER,
    last_error TEXT,
    PRIMARY KEY (event_seq, endpoint_id)
  ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (endpoint_id, status, next_at);`;

/** An allocation event's id in SQL (the CLI lists and replays by it): as allocationEvent() makes it. */
export const ALLOCATION_EVENT_ID = `'evt_' || (SELECT value FROM webhook_meta WHERE key = 'host_tag') || '_' || a.run || '_' || a.allocation_id || '_' || substr(ev.type, 12)`;

export const TRIGGER_NAMES = ['webhook_allocation_insert', 'webhook_allocation_update'] as const;

/** A short, stable tag of the host in every event id: ids stay unique across a fleet. */
export function hostTag(hostId: string): string {
  return createHash('sha256').update(hostId).digest('hex').slice(0, 8);
}

const queue = (type: string, when: string) =>
  `INSERT INTO webhook_queue (type, alloc_id, at) SELECT '${type}', NEW.id, ${NOW_MS} WHERE ${when};`;

/**
 * The triggers on `allocations` (kind 'allocation' only: never-allocated sessions are no
 * allocation), for the types some endpoint takes. Inserted → `allocation.started` (and
 * `allocation.ended` too when it is inserted closed); closed (ended_at set) → `allocation.ended`.
 */
export function triggerSql(types: { started: boolean; ended: boolean }): string {
  const out: string[] = [];
  const onInsert = [
    types.started ? queue('allocation.started', '1') : '',
    types.ended ? queue('allocation.ended', 'NEW.ended_at IS NOT NULL') : '',
  ].join('\n');
  if (types.started || types.ended)
    out.push(`CREATE TRIGGER webhook_allocation_insert AFTER INSERT ON allocations WHEN NEW.kind = 'allocation'
      BEGIN ${onInsert} END;`);
  if (types.ended)
    out.push(`CREATE TRIGGER webhook_allocation_update AFTER UPDATE OF ended_at ON allocations
      WHEN NEW.kind = 'allocation' AND OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL
      BEGIN ${queue('allocation.ended', '1')} END;`);
  return out.join('\n');
}

/** One pending delivery of event @seq per endpoint subscribed to its @type, due at @at, after event @after. */
export const INSERT_DELIVERIES_SQL = `INSERT INTO webhook_deliveries (event_seq, endpoint_id, status, next_at, queued_at, attempts, after_seq)
  SELECT @seq, endpoint_id, 'pending', @at, @at, 0, @after FROM webhook_subscriptions WHERE type = @type
  ON CONFLICT DO NOTHING`;
