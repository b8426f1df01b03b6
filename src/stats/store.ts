import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { COLUMNS, recordValues } from './allocation-row.js';
import type { AllocationRecord } from './allocation-record.js';
import { HOURLY_COUNTERS, type HourlyRow } from './unattributed.js';
import { ensureIncrementalAutoVacuum, type AutoVacuumSetup } from './auto-vacuum.js';

/** Versioned schema: each entry runs once, in order, recorded in PRAGMA user_version. */
const MIGRATIONS: string[] = [
  `CREATE TABLE allocations (
     id INTEGER PRIMARY KEY,
     run TEXT NOT NULL,
     allocation_id TEXT NOT NULL,
     kind TEXT NOT NULL,
     realm TEXT,
     username TEXT NOT NULL,
     client_id TEXT NOT NULL,
     transport TEXT,
     local TEXT,
     remote TEXT,
     lifetime INTEGER,
     started_at INTEGER NOT NULL,
     ended_at INTEGER,
     last_event_at INTEGER NOT NULL,
     end_reason TEXT,
     end_detail TEXT,
     rcvp INTEGER NOT NULL, rcvb INTEGER NOT NULL, sentp INTEGER NOT NULL, sentb INTEGER NOT NULL,
     peer_rcvp INTEGER NOT NULL, peer_rcvb INTEGER NOT NULL, peer_sentp INTEGER NOT NULL, peer_sentb INTEGER NOT NULL,
     complete INTEGER NOT NULL,
     UNIQUE (run, allocation_id)
   );
   CREATE INDEX allocations_started ON allocations (started_at);
   CREATE INDEX allocations_client ON allocations (realm, client_id, started_at);
   CREATE INDEX allocations_open ON allocations (ended_at) WHERE ended_at IS NULL;`,
  // Where the log source stands (turnserver run, log file identity, byte offset): written in the
  // same transaction as the usage it produced, so a restarted monitor resumes exactly there.
  `CREATE TABLE log_position (
     id INTEGER PRIMARY KEY CHECK (id = 1),
     run TEXT NOT NULL,
     file TEXT NOT NULL,
     offset INTEGER NOT NULL
   );`,
  // The longest closed allocation, kept by triggers: a window query reads allocations that
  // started up to this long before the window (an index range), not every earlier row.
  `CREATE TABLE usage_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
   INSERT INTO usage_meta (key, value)
     SELECT 'max_duration_ms', coalesce(max(ended_at - started_at), 0) FROM allocations;
   CREATE TRIGGER usage_max_duration_insert AFTER INSERT ON allocations
     WHEN NEW.ended_at IS NOT NULL
       AND NEW.ended_at - NEW.started_at > (SELECT value FROM usage_meta WHERE key = 'max_duration_ms')
   BEGIN
     UPDATE usage_meta SET value = NEW.ended_at - NEW.started_at WHERE key = 'max_duration_ms';
   END;
   CREATE TRIGGER usage_max_duration_update AFTER UPDATE OF ended_at ON allocations
     WHEN NEW.ended_at IS NOT NULL
       AND NEW.ended_at - NEW.started_at > (SELECT value FROM usage_meta WHERE key = 'max_duration_ms')
   BEGIN
     UPDATE usage_meta SET value = NEW.ended_at - NEW.started_at WHERE key = 'max_duration_ms';
   END;`,
  // Sessions that never allocated (bindings, failed authentications) summed per hour of their
  // start, not a row each (unattributed.ts). What earlier monitors left open of them is closed
  // here: from now on they are written only when they close, into this table.
  `CREATE TABLE unattributed_hourly (
     hour INTEGER NOT NULL, -- epoch ms, start of the UTC hour
     realm TEXT NOT NULL DEFAULT '',
     username TEXT NOT NULL,
     sessions INTEGER NOT NULL,
     rcvp INTEGER NOT NULL, rcvb INTEGER NOT NULL, sentp INTEGER NOT NULL, sentb INTEGER NOT NULL,
     peer_rcvp INTEGER NOT NULL, peer_rcvb INTEGER NOT NULL, peer_sentp INTEGER NOT NULL, peer_sentb INTEGER NOT NULL,
     PRIMARY KEY (hour, realm, username)
   );
   UPDATE allocations SET ended_at = last_event_at, end_reason = 'monitor-restart', complete = 0
    WHERE ended_at IS NULL AND kind = 'unattributed'
      AND peer_rcvp = 0 AND peer_rcvb = 0 AND peer_sentp = 0 AND peer_sentb = 0;`,
];

const names = COLUMNS.map((c) => c.sql);
const UPSERT = `INSERT INTO allocations (${names.join(', ')}) VALUES (${names.map(() => '?').join(', ')})
  ON CONFLICT (run, allocation_id) DO UPDATE SET ${names
    .filter((n) => n !== 'run' && n !== 'allocation_id')
    .map((n) => `${n} = excluded.${n}`)
    .join(', ')}`;

const ADD_HOURLY = `INSERT INTO unattributed_hourly (hour, realm, username, sessions, ${HOURLY_COUNTERS.join(', ')})
  VALUES (${['?', '?', '?', '?', ...HOURLY_COUNTERS.map(() => '?')].join(', ')})
  ON CONFLICT (hour, realm, username) DO UPDATE SET sessions = sessions + excluded.sessions, ${HOURLY_COUNTERS.map(
    (c) => `${c} = ${c} + excluded.${c}`,
  ).join(', ')}`;

/** The log source's committed read position. */
export interface LogPosition {
  run: string;
  file: string;
  offset: number;
}

/**
 * SQLite storage of allocation records (WAL, synchronous=NORMAL). Open allocations are stored
 * as checkpoints (ended_at NULL) and overwritten as they change; writes are batched in one
 * transaction per flush. Read-only users (the CLI) open the file with UsageReader instead.
 */
export class UsageStore {
  readonly db: Database.Database;
  /** What opening did about incremental auto-vacuum (see auto-vacuum.ts). */
  readonly autoVacuum: AutoVacuumSetup;
  private readonly writeBatch: (records: AllocationRecord[], position: LogPosition | null, hourly: HourlyRow[]) => void;

  constructor(file: string) {
    mkdirSync(path.dirname(file), { recursive: true });
    this.db = new Database(file);
    // Before anything else touches a new file: the mode is fixed once the file has content.
    this.autoVacuum = ensureIncrementalAutoVacuum(this.db);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.migrate();
    // Outside MIGRATIONS (it is not part of the versioned schema): what retention deletes by, so
    // a prune batch reads the index range it deletes, not the table.
    this.db.exec(`CREATE INDEX IF NOT EXISTS allocations_ended ON allocations (ended_at) WHERE ended_at IS NOT NULL`);
    this.db.pragma('busy_timeout = 5000');
    const upsert = this.db.prepare(UPSERT);
    const savePosition = this.db.prepare(`INSERT INTO log_position (id, run, file, offset) VALUES (1, ?, ?, ?)
      ON CONFLICT (id) DO UPDATE SET run = excluded.run, file = excluded.file, offset = excluded.offset`);
    const addHourly = this.db.prepare(ADD_HOURLY);
    this.writeBatch = this.db.transaction(
      (records: AllocationRecord[], position: LogPosition | null, hourly: HourlyRow[]) => {
        if (position) savePosition.run(position.run, position.file, position.offset);
        for (const r of records) upsert.run(recordValues(r));
        for (const h of hourly) addHourly.run(h.hour, h.realm, h.username, h.sessions, ...h.counters);
      },
    );
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /**
   * Records, the closed never-allocated sessions added to their hours, and the log position they
   * were read up to, in one transaction.
   */
  write(records: AllocationRecord[], position: LogPosition | null = null, hourly: HourlyRow[] = []): void {
    if (records.length > 0 || position || hourly.length > 0) this.writeBatch(records, position, hourly);
  }

  /**
   * Allocations left open by a monitor that died (SIGKILL, power loss): their turnserver was
   * replaced, so they ended; close them at their last checkpointed event.
   */
  closeLeftovers(reason = 'monitor-restart'): number {
    return this.db
      .prepare(`UPDATE allocations SET ended_at = last_event_at, end_reason = ?, complete = 0 WHERE ended_at IS NULL`)
      .run(reason).changes;
  }

  close(): void {
    this.db.close();
  }
}
