import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { harnessTest, type Harness } from '../harness/harness.js';
import { exportConfig, pgCount } from '../harness/export.js';
import { startMonitor, type LogEntry, type MonitorProcess } from '../harness/monitor.js';
import { startPostgres } from '../harness/postgres.js';
import { countRows, DAY_MS, dbFileBytes, insertRows, type GeneratedRows } from '../harness/retention.js';
import { statsConfig } from '../harness/statsdb.js';
import { UsageStore } from '../../src/stats/store.js';
import { waitUntil } from '../../src/process/wait.js';

/** A usage.db written before the monitor starts, with the monitor's own schema. */
function prefill(file: string, rows: GeneratedRows[], legacy = false): void {
  const store = new UsageStore(file);
  try {
    store.db.transaction(() => rows.forEach((g) => insertRows(store.db, g)))();
    if (legacy) {
      // As a file made before incremental auto-vacuum: mode NONE.
      store.db.pragma('auto_vacuum = NONE');
      store.db.exec('VACUUM');
    }
    store.db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    store.close();
  }
}

/** Read the monitor's usage.db beside it (WAL: a reader never waits for the monitor). */
function withDb<T>(file: string, fn: (db: Database.Database) => T): T {
  const db = new Database(file, { readonly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

const retentionLog =
  (event: string, extra: (e: LogEntry) => boolean = () => true) =>
  (e: LogEntry) =>
    e.component === 'retention' && e.event === event && extra(e);

const dataDirOf = (h: Harness) => path.join(h.dir, 'data');

harnessTest(
  'closed records that ended before now − retentionDays are pruned; newer and open ones all stay; /health and metrics tell',
  async (h) => {
    const file = path.join(dataDirOf(h), 'usage.db');
    const now = Date.now();
    prefill(file, [
      { run: 'ancient', n: 2000, startedAt: now - 400 * DAY_MS, endedAt: now - 400 * DAY_MS + 60_000 },
      // Just past the 90 days, and just within them.
      { run: 'past', n: 1000, startedAt: now - 92 * DAY_MS, endedAt: now - 91 * DAY_MS },
      { run: 'within', n: 1000, startedAt: now - 90 * DAY_MS, endedAt: now - 89 * DAY_MS },
      { run: 'recent', n: 500, startedAt: now - DAY_MS, endedAt: now - DAY_MS + 60_000 },
      // Open for 200 days: never pruned (at the first spawn they are closed at their last event, a day ago).
      { run: 'open', n: 50, startedAt: now - 200 * DAY_MS, endedAt: null, lastEventAt: now - DAY_MS, stepMs: 1 },
    ]);
    const m = await startMonitor(h, { ...statsConfig, dataDir: dataDirOf(h) });
    const pruned = await m.waitForLog(retentionLog('retention-pruned'), { timeoutMs: 30_000 });
    assert.equal(pruned.rows, 3000);
    assert.equal(pruned.level, 'info');
    const counts = withDb(file, (db) => ({
      ancient: countRows(db, 'ancient'),
      past: countRows(db, 'past'),
      within: countRows(db, 'within'),
      recent: countRows(db, 'recent'),
      open: countRows(db, 'open'),
      total: db.prepare('SELECT count(*) FROM allocations').pluck().get() as number,
      oldest: db.prepare('SELECT min(started_at) FROM allocations').pluck().get() as number,
    }));
    assert.deepEqual(
      { ...counts, total: undefined, oldest: undefined },
      { ancient: 0, past: 0, within: 1000, recent: 500, open: 50, total: undefined, oldest: undefined },
    );
    await waitUntil(
      '/health counted the history',
      async () => (await m.health()).body.stats.history.rows === counts.total,
      5000,
    );
    const { history } = (await m.health()).body.stats;
    assert.equal(history.prunedTotal, 3000);
    assert.equal(history.retentionDays, 90);
    assert.equal(history.oldestStartedAt, new Date(counts.oldest).toISOString());
    assert.ok(history.dbBytes > 0 && history.dbBytes <= dbFileBytes(file) * 2, `${history.dbBytes} bytes`);
    const metrics = (await m.get('/metrics')).text;
    assert.match(metrics, /^turn_monitor_usage_pruned_total 3000$/m);
    assert.match(metrics, /^turn_monitor_usage_db_bytes [1-9]\d*$/m);
    assert.equal((await m.stop()).code, 0);
    assert.ok(
      !m.logs.some((e) => e.component === 'retention' && e.level !== 'info' && e.level !== 'debug'),
      'no warning',
    );
  },
  { timeout: 60_000 },
);

harnessTest(
  'export on, PostgreSQL down: old records that have not shipped are kept; once they shipped they are pruned',
  async (h) => {
    const HOST = 'host-r';
    // PostgreSQL made and stopped: the export fails until it is started again.
    const pg = await startPostgres(h);
    await pg.stop();
    const base = exportConfig(h, pg, HOST);
    const config = { ...base, stats: { ...base.stats, retentionDays: 7 } };
    const file = path.join(base.dataDir, 'usage.db');
    const now = Date.now();
    // A week's outage (and more) of records never shipped, and a day's.
    prefill(file, [
      { run: 'unshipped-old', n: 400, startedAt: now - 10 * DAY_MS, endedAt: now - 8 * DAY_MS, stepMs: 60_000 },
      { run: 'unshipped-new', n: 100, startedAt: now - DAY_MS, endedAt: now - DAY_MS + 60_000 },
    ]);
    const m = await startMonitor(h, config);
    // The export's first start marks every record; a pass sees the old ones unshipped and keeps them.
    const kept = await m.waitForLog(
      retentionLog('retention-pass', (e) => e.keptUnshipped === 400),
      {
        timeoutMs: 20_000,
      },
    );
    assert.equal(kept.rows, 0);
    assert.equal(
      withDb(file, (db) => countRows(db, 'unshipped-old')),
      400,
    );
    await waitUntil('export degraded', async () => (await m.health()).body.export.status === 'degraded', 10_000);
    assert.equal(
      withDb(file, (db) => countRows(db, 'unshipped-old')),
      400,
      'still kept while PostgreSQL is down',
    );
    assert.ok(!m.logs.some(retentionLog('retention-pruned')));

    await pg.start();
    await waitUntil('every record shipped', async () => (await pgCount(pg, HOST).catch(() => 0)) === 500, 30_000);
    // The watch on the first kept record's mark starts a pass as soon as it shipped.
    const prunedRows = () =>
      m.logs.filter(retentionLog('retention-pruned')).reduce((n, e) => n + (e.rows as number), 0);
    await waitUntil('shipped records pruned', () => prunedRows() >= 400, 15_000);
    assert.equal(prunedRows(), 400);
    const left = withDb(file, (db) => ({
      old: countRows(db, 'unshipped-old'),
      recent: countRows(db, 'unshipped-new'),
    }));
    assert.deepEqual(left, { old: 0, recent: 100 });
    assert.equal(await pgCount(pg, HOST), 500, 'PostgreSQL keeps the fleet history');
    assert.equal((await m.health()).body.stats.history.prunedTotal, 400);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);

harnessTest(
  'a file made without auto-vacuum is switched once at start, and gives the space of what was pruned back',
  async (h, t) => {
    const file = path.join(dataDirOf(h), 'usage.db');
    const now = Date.now();
    prefill(
      file,
      [
        { run: 'old', n: 250_000, startedAt: now - 200 * DAY_MS, endedAt: now - 200 * DAY_MS + 60_000, clients: 5000 },
        { run: 'recent', n: 2000, startedAt: now - DAY_MS, endedAt: now - DAY_MS + 60_000 },
      ],
      true,
    );
    const before = statSync(file).size;
    assert.ok(before > 40e6, `${before} bytes to start with`);
    const m: MonitorProcess = await startMonitor(h, { ...statsConfig, dataDir: dataDirOf(h) });
    const switched = await m.waitForLog(retentionLog('auto-vacuum-enabled'));
    assert.equal(switched.level, 'info');
    const pruned = await m.waitForLog(retentionLog('retention-pruned'), { timeoutMs: 100_000 });
    assert.equal(pruned.rows, 250_000);
    assert.ok((pruned.vacuumedPages as number) > 0);
    const { history } = (await m.health()).body.stats;
    assert.ok(history.dbBytes < before / 4, `${history.dbBytes} bytes in /health after pruning, from ${before}`);
    assert.equal(
      withDb(file, (db) => db.pragma('auto_vacuum', { simple: true })),
      2,
    );
    assert.equal((await m.stop()).code, 0);
    const after = statSync(file).size;
    assert.ok(after < before / 4, `usage.db ${after} bytes after, ${before} before`);
    t.diagnostic(
      `usage.db ${before} bytes → ${after} bytes; VACUUM at start ${String(switched.ms)} ms; pass ${String(pruned.ms)} ms`,
    );
    assert.equal(
      withDb(file, (db) => countRows(db, 'recent')),
      2000,
    );
    // Switched once: the next start runs no VACUUM.
    const again = await startMonitor(h, { ...statsConfig, dataDir: dataDirOf(h) }, { rawConfig: m.config });
    await again.waitForLog(retentionLog('retention-starting'));
    assert.ok(!again.logs.some(retentionLog('auto-vacuum-enabled')));
    assert.equal((await again.stop()).code, 0);
  },
  { timeout: 180_000 },
);
