import { createHash } from 'node:crypto';
import { COLUMNS } from '../stats/allocation-row.js';

/**
 * The webhook outbox in usage.db: tables, and the triggers that write an allocation's events in
 * the very transaction that stores the change (so no record is committed without its event).
 *
 * - `webhook_events`: one row per event, its JSON body built once (by a trigger from the stored
 *   row, or by the monitor) and sent as is on every attempt, so a retry or a replay is the same
 *   bytes with the same `webhook-id`. `seq` orders them (AUTOINCREMENT: never reused).
 * - `webhook_deliveries`: one row per (event, endpoint) with that endpoint's state (pending or
 *   failed, attempts, next attempt, last error). Per endpoint rather than per event, so that a
 *   dead endpoint's backlog, its retries and its failures are its own: the other endpoints'
 *   rows are untouched and their queries never read it. A delivered row is deleted; the event
 *   goes with its last delivery.
 * - `after_seq`: the event this one must wait for, per endpoint, while it is pending there
 *   (`allocation.ended` after its `allocation.started`; host, turnserver, certificate and client
 *   events after the previous one of their kind): order where order matters, concurrency
 *   everywhere else.
 * - `webhook_subscriptions`: (type, endpoint) pairs from the config, rewritten at every start;
 *   a trigger writes an event only when some endpoint takes its type.
 */

export const NOW_MS = `CAST(unixepoch('subsec') * 1000 AS INTEGER)`;

export const TABLES = `
  CREATE TABLE IF NOT EXISTS webhook_endpoints (id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE);
  CREATE TABLE IF NOT EXISTS webhook_subscriptions (
    type TEXT NOT NULL,
    endpoint_id INTEGER NOT NULL,
    PRIMARY KEY (type, endpoint_id)
  ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS webhook_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    okey TEXT,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL
  );
  CREATE INDEX IF NOT EXISTS webhook_events_okey ON webhook_events (okey, seq) WHERE okey IS NOT NULL;
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

export const TRIGGER_NAMES = ['webhook_allocation_insert', 'webhook_allocation_update'] as const;

/** A short, stable tag of the host in every event id: ids stay unique across a fleet. */
export function hostTag(hostId: string): string {
  return createHash('sha256').update(hostId).digest('hex').slice(0, 8);
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
const iso = (expr: string) => `strftime('%Y-%m-%dT%H:%M:%fZ', ${expr} / 1000.0, 'unixepoch')`;

/** `data` of an allocation event: the public row (`usage --format json`), all of it or its start. */
function dataJson(ended: boolean): string {
  const startKeys = new Set(['allocationId', 'run', 'realm', 'username', 'clientId', 'transport', 'startedAt']);
  const parts: string[] = [];
  for (const c of COLUMNS) {
    if (c.key === null || (!ended && !startKeys.has(c.key))) continue;
    const v = `NEW.${c.sql}`;
    const expr =
      c.kind === 'time' ? iso(v) : c.kind === 'bool' ? `json(CASE WHEN ${v} THEN 'true' ELSE 'false' END)` : v;
    parts.push(`'${c.key}', ${expr}`);
  }
  return `json_object(${parts.join(', ')})`;
}

/** Two statements writing one allocation event and its deliveries; `when` guards both. */
function emit(tag: string, hostId: string, type: 'allocation.started' | 'allocation.ended', when: string): string {
  const ended = type === 'allocation.ended';
  const idOf = (suffix: string) => `'evt_${tag}_' || NEW.run || '_' || NEW.allocation_id || '_${suffix}'`;
  const id = idOf(ended ? 'ended' : 'started');
  const at = ended ? 'NEW.ended_at' : 'NEW.started_at';
  const body = `json_object('type', '${type}', 'id', ${id}, 'timestamp', ${iso(at)}, 'hostId', ${quote(hostId)}, 'data', ${dataJson(ended)})`;
  const after = ended ? `(SELECT seq FROM webhook_events WHERE id = ${idOf('started')})` : 'NULL';
  return `
    INSERT INTO webhook_events (id, type, created_at, body)
      SELECT ${id}, '${type}', ${NOW_MS}, ${body}
       WHERE ${when} AND EXISTS (SELECT 1 FROM webhook_subscriptions WHERE type = '${type}')
      ON CONFLICT (id) DO NOTHING;
    INSERT INTO webhook_deliveries (event_seq, endpoint_id, status, next_at, queued_at, attempts, after_seq)
      SELECT e.seq, s.endpoint_id, 'pending', e.created_at, e.created_at, 0, ${after}
        FROM webhook_events e JOIN webhook_subscriptions s ON s.type = '${type}'
       WHERE ${when} AND e.id = ${id}
      ON CONFLICT DO NOTHING;`;
}

/**
 * The triggers on `allocations` (kind 'allocation' only: never-allocated sessions are no
 * allocation). Inserted → `allocation.started` (and `allocation.ended` too when it is inserted
 * closed); closed (ended_at set) → `allocation.ended`, whose data is the stored row.
 */
export function triggerSql(hostId: string): string {
  const tag = hostTag(hostId);
  return `
    CREATE TRIGGER webhook_allocation_insert AFTER INSERT ON allocations WHEN NEW.kind = 'allocation' BEGIN
      ${emit(tag, hostId, 'allocation.started', '1')}
      ${emit(tag, hostId, 'allocation.ended', 'NEW.ended_at IS NOT NULL')}
    END;
    CREATE TRIGGER webhook_allocation_update AFTER UPDATE OF ended_at ON allocations
      WHEN NEW.kind = 'allocation' AND OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL BEGIN
      ${emit(tag, hostId, 'allocation.ended', '1')}
    END;`;
}
