import type Database from 'better-sqlite3';
import { rowFromDb, type AllocationRow, type DbRow } from '../stats/allocation-row.js';
import { INSERT_DELIVERIES_SQL } from './outbox-sql.js';

/** The JSON of one event, keys in the documented order. */
export function eventBody(type: string, id: string, at: number | string, hostId: string, data: object): string {
  const timestamp = typeof at === 'string' ? at : new Date(at).toISOString();
  return JSON.stringify({ type, id, timestamp, hostId, data });
}

const START_KEYS = ['allocationId', 'run', 'realm', 'username', 'clientId', 'transport', 'startedAt'] as const;

/**
 * An allocation event from its stored row: `allocation.started` carries the start's fields,
 * `allocation.ended` the whole row as `usage --format json` shows it. Its id is made of the
 * host's tag, the run and the allocation id: the same event always has the same id.
 */
export function allocationEvent(
  type: 'allocation.started' | 'allocation.ended',
  stored: DbRow,
  tag: string,
  hostId: string,
): { id: string; body: string } {
  const row: AllocationRow = rowFromDb(stored);
  const base = `evt_${tag}_${row.run}_${row.allocationId}`;
  const startedId = `${base}_started`;
  if (type === 'allocation.started') {
    const data = Object.fromEntries(START_KEYS.map((k) => [k, row[k]]));
    return { id: startedId, body: eventBody(type, startedId, row.startedAt, hostId, data) };
  }
  const id = `${base}_ended`;
  return { id, body: eventBody(type, id, row.endedAt ?? row.startedAt, hostId, row) };
}

export interface NewEvent {
  id: string;
  type: string;
  at: number;
  body: string;
  /** Order key: the event waits for the previous one of this key at each endpoint. */
  order?: string | null;
}

/**
 * Writes an event of no record (host, turnserver, certificate, client) with one delivery per
 * endpoint taking its type, in the caller's transaction.
 */
export class EventWriter {
  private readonly insertEvent: Database.Statement;
  private readonly lastOfOrder: Database.Statement;
  private readonly insertDeliveries: Database.Statement;

  constructor(db: Database.Database) {
    this.insertEvent = db.prepare(
      `INSERT INTO webhook_events (id, type, okey, created_at, body) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) WHERE id IS NOT NULL DO NOTHING`,
    );
    this.lastOfOrder = db.prepare(`SELECT max(seq) FROM webhook_events WHERE okey = ? AND seq < ?`).pluck();
    this.insertDeliveries = db.prepare(INSERT_DELIVERIES_SQL);
  }

  /** The event's seq, or null when an event of that id exists already. */
  write(e: NewEvent): number | null {
    const r = this.insertEvent.run(e.id, e.type, e.order ?? null, e.at, e.body);
    if (r.changes === 0) return null;
    const seq = Number(r.lastInsertRowid);
    const after = e.order ? (this.lastOfOrder.get(e.order, seq) as number | null) : null;
    this.insertDeliveries.run({ seq, at: e.at, after, type: e.type });
    return seq;
  }
}
