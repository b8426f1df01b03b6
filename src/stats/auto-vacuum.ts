import type Database from 'better-sqlite3';

/** What opening usage.db did about its auto-vacuum mode (logged by the retention subsystem). */
export interface AutoVacuumSetup {
  /** The file's mode after opening: 'incremental' gives pruned pages back with incremental_vacuum. */
  mode: 'none' | 'full' | 'incremental';
  /** Milliseconds of the one-time VACUUM that switched an existing file, null when none ran. */
  vacuumMs: number | null;
  /** Why the switch failed (disk full, locked); it is tried again at the next start. */
  error: string | null;
}

const MODES = ['none', 'full', 'incremental'] as const;

const modeOf = (db: Database.Database): AutoVacuumSetup['mode'] =>
  MODES[db.pragma('auto_vacuum', { simple: true }) as number] ?? 'none';

/**
 * Turn on incremental auto-vacuum, so the pages that pruning frees can be given back to the file
 * system (`PRAGMA incremental_vacuum(N)`) in small steps. Must run right after the file is opened,
 * before journal_mode = WAL and the migrations: a new file takes the mode from the pragma alone,
 * as long as nothing has been written to it yet. An existing file whose mode is NONE needs one
 * VACUUM, which rewrites it (it cannot run inside a transaction; nothing else has the connection
 * yet); afterwards the mode is stored in the file, so the switch happens once. FULL is left as is:
 * it gives pages back at every commit already.
 */
export function ensureIncrementalAutoVacuum(db: Database.Database): AutoVacuumSetup {
  const mode = modeOf(db);
  if (mode !== 'none') return { mode, vacuumMs: null, error: null };
  db.pragma('auto_vacuum = INCREMENTAL');
  if (modeOf(db) === 'incremental') return { mode: 'incremental', vacuumMs: null, error: null };
  const started = performance.now();
  try {
    db.exec('VACUUM');
    // In WAL mode the rewritten file went through the WAL: copy it back and empty the WAL.
    if (db.pragma('journal_mode', { simple: true }) === 'wal') db.pragma('wal_checkpoint(TRUNCATE)');
  } catch (err) {
    return { mode: modeOf(db), vacuumMs: null, error: (err as Error).message };
  }
  return { mode: modeOf(db), vacuumMs: Math.round(performance.now() - started), error: null };
}
