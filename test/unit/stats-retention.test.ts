import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { buildConfig, ConfigError } from '../../src/config/load.js';
import { Retention, type RetentionTuning } from '../../src/stats/retention.js';
import { SCAN, SCAN_HOURLY, SCAN_UNSHIPPED } from '../../src/stats/retention-steps.js';
import { cutoffFor, DAY_MS, nextBatchSize, planBatch, START } from '../../src/stats/retention-plan.js';
import { Checkpointer } from '../../src/stats/checkpointer.js';
import { RowCount } from '../../src/stats/row-count.js';
import { UsageStore } from '../../src/stats/store.js';
import { countRows, insertRows } from '../harness/retention.js';

const NOW = Date.UTC(2027, 0, 15);

// --- pure parts ---

test('cutoff: now minus the retention; null keeps everything', () => {
  assert.equal(cutoffFor(NOW, 90), NOW - 90 * DAY_MS);
  assert.equal(cutoffFor(NOW, 1), NOW - DAY_MS);
  assert.equal(cutoffFor(NOW, null), null);
});

test('batch plan: unshipped rows are kept and stepped over, the cursor moves to the last row scanned', () => {
  const rows = [
    { id: 7, endedAt: 100, unshipped: false },
    { id: 3, endedAt: 101, unshipped: true },
    { id: 9, endedAt: 101, unshipped: false },
    { id: 4, endedAt: 105, unshipped: true },
  ];
  const p = planBatch(rows, 4, START);
  assert.deepEqual(p.ids, [7, 9]);
  assert.equal(p.kept, 2);
  assert.deepEqual(p.firstKept, rows[1]);
  assert.deepEqual(p.cursor, [105, 4]);
  assert.equal(p.exhausted, false, 'a full batch: there may be more');
  const last = planBatch(rows.slice(0, 1), 4, [99, 1]);
  assert.equal(last.exhausted, true);
  assert.equal(last.firstKept, null);
  const none = planBatch([], 4, [99, 1]);
  assert.deepEqual(none, { ids: [], kept: 0, firstKept: null, cursor: [99, 1], exhausted: true });
});

test('batch size follows the measured time: halved over the budget, grown under half of it, bounded', () => {
  const b = { min: 10, max: 500, budgetMs: 4 };
  assert.equal(nextBatchSize(200, 9, b), 100);
  assert.equal(nextBatchSize(15, 9, b), 10);
  assert.equal(nextBatchSize(200, 1, b), 250);
  assert.equal(nextBatchSize(450, 1, b), 500);
  assert.equal(nextBatchSize(200, 3, b), 200);
});

test('config: stats.retentionDays is 90 by default, null or a positive integer; errors name the key, not the value', () => {
  assert.equal(buildConfig({}, '/x').stats.retentionDays, 90);
  assert.equal(buildConfig({ stats: { retentionDays: null } }, '/x').stats.retentionDays, null);
  assert.equal(buildConfig({ stats: { retentionDays: 7 } }, '/x').stats.retentionDays, 7);
  for (const bad of [0, -4711, 1.5, 'ninety-days-4711', true]) {
    assert.throws(
      () => buildConfig({ stats: { retentionDays: bad } }, '/x'),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message.startsWith('config key "stats.retentionDays": ') &&
        !/4711|1\.5|true/.test(err.message),
    );
  }
});

// --- against a real usage.db ---

function tempDb(t: TestContext): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tm-retention-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'usage.db');
}

test('store: a new file has incremental auto-vacuum and the ended_at index; an old NONE file is switched once', (t) => {
  const file = tempDb(t);
  let store = new UsageStore(file);
  assert.equal(store.db.pragma('auto_vacuum', { simple: true }), 2);
  assert.deepEqual(store.autoVacuum, { mode: 'incremental', vacuumMs: null, error: null });
  assert.ok(store.db.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'allocations_ended'`).get());
  insertRows(store.db, { run: 'r', n: 1000, startedAt: NOW, endedAt: NOW + 1 });
  // As a file made before this version: auto_vacuum NONE.
  store.db.pragma('auto_vacuum = NONE');
  store.db.exec('VACUUM');
  assert.equal(store.db.pragma('auto_vacuum', { simple: true }), 0);
  store.close();

  store = new UsageStore(file);
  assert.equal(store.autoVacuum.mode, 'incremental');
  assert.equal(typeof store.autoVacuum.vacuumMs, 'number', 'one VACUUM switched it');
  assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(countRows(store.db, 'r'), 1000);
  store.close();
  store = new UsageStore(file);
  assert.deepEqual(store.autoVacuum, { mode: 'incremental', vacuumMs: null, error: null }, 'idempotent');
  store.close();
});

test('a batch reads the allocations_ended index range in order (no table scan, no sort)', (t) => {
  const store = new UsageStore(tempDb(t));
  t.after(() => store.close());
  store.db.exec(
    `CREATE TABLE export_outbox (alloc_id INTEGER PRIMARY KEY, version INTEGER NOT NULL, marked_at INTEGER NOT NULL)`,
  );
  for (const sql of [SCAN, SCAN_UNSHIPPED]) {
    const plan = (store.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(0, 0, 0, 10) as { detail: string }[])
      .map((r) => r.detail)
      .join('\n');
    assert.match(plan, /USING (COVERING )?INDEX allocations_ended \(ended_at>\? AND ended_at<\?\)/, plan);
    assert.doesNotMatch(plan, /TEMP B-TREE|SCAN allocations/, plan);
  }
});

test('row count: counted in chunks (values shared across a chunk edge), then tracked through inserts, deletes and id reuse', (t) => {
  const store = new UsageStore(tempDb(t));
  t.after(() => store.close());
  const db = store.db;
  // 250 rows sharing one started_at, then 1000 distinct.
  insertRows(db, { run: 'same', n: 250, startedAt: NOW, endedAt: NOW, stepMs: 0 });
  insertRows(db, { run: 'spread', n: 1000, startedAt: NOW - 5000, endedAt: NOW });
  const exact = () => db.prepare('SELECT count(*) FROM allocations').pluck().get() as number;
  const rc = new RowCount(db, 100);
  let chunks = 0;
  insertRows(db, { run: 'during', n: 10, startedAt: NOW - 10_000_000, endedAt: null });
  while (!rc.countChunk()) chunks++;
  assert.ok(chunks >= 5, `${chunks} chunks`);
  assert.equal(rc.rows, 1250, 'the rows written during the count are not in it yet');
  rc.refresh();
  assert.equal(rc.rows, exact());
  insertRows(db, { run: 'more', n: 30, startedAt: NOW, endedAt: NOW });
  rc.refresh();
  assert.equal(rc.rows, exact());
  // Delete the newest rows: their ids are given out again.
  const gone = db.prepare(`DELETE FROM allocations WHERE run = 'more'`).run().changes;
  rc.deleted(gone);
  insertRows(db, { run: 'reused', n: 40, startedAt: NOW, endedAt: NOW });
  rc.refresh();
  assert.equal(rc.rows, exact());
});

interface Harness {
  db: Database.Database;
  store: UsageStore;
  retention: Retention;
  logs: Record<string, unknown>[];
  registry: Registry;
  waitFor(event: string, from?: number): Promise<Record<string, unknown>>;
}

const FAST: Partial<RetentionTuning> = { gapMs: 0, watchMs: 20, retryMs: 20, idleMs: 60_000, countChunk: 500 };

function retention(
  t: TestContext,
  opts: {
    retentionDays?: number | null;
    exportEnabled?: boolean;
    fill?: (db: Database.Database) => void;
    /** The file name retention is given (the store opens the real one). */
    dbFile?: string;
  } = {},
  tuning: Partial<RetentionTuning> = {},
): Harness {
  const file = tempDb(t);
  const store = new UsageStore(file);
  opts.fill?.(store.db);
  const logs: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) },
  );
  const registry = new Registry();
  const r = new Retention({
    dbFile: opts.dbFile ?? file,
    retentionDays: opts.retentionDays === undefined ? 90 : opts.retentionDays,
    exportEnabled: opts.exportEnabled ?? false,
    registry,
    log,
    now: () => NOW,
    tuning: { ...FAST, ...tuning },
  });
  r.start(store);
  t.after(async () => {
    await r.stop();
    store.close();
  });
  const waitFor = async (event: string, from = 0) => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const e = logs.slice(from).find((l) => l.event === event);
      if (e) return e;
      if (Date.now() > deadline) throw new Error(`no ${event} log; got ${logs.map((l) => String(l.event)).join(', ')}`);
      await sleep(5);
    }
  };
  return { db: store.db, store, retention: r, logs, registry, waitFor };
}

const OLD = NOW - 120 * DAY_MS;
const RECENT = NOW - 10 * DAY_MS;

function history(db: Database.Database) {
  insertRows(db, { run: 'old', n: 1500, startedAt: OLD, endedAt: OLD + 60_000 });
  insertRows(db, { run: 'recent', n: 300, startedAt: RECENT, endedAt: RECENT + 60_000 });
  // Open for 120 days, last heard of 100 days ago (ended_at NULL): never pruned.
  insertRows(db, { run: 'open', n: 20, startedAt: OLD, endedAt: null, lastEventAt: NOW - 100 * DAY_MS });
}

test('prunes closed rows that ended before the cutoff, in batches; recent and open rows stay; counts exact', async (t) => {
  const h = retention(t, { fill: history }, { batchRows: 100, maxBatchRows: 100 });
  const e = await h.waitFor('retention-pruned');
  assert.equal(e.rows, 1500);
  assert.equal(countRows(h.db, 'old'), 0);
  assert.equal(countRows(h.db, 'recent'), 300);
  assert.equal(countRows(h.db, 'open', true), 20);
  const hist = h.retention.history();
  assert.equal(hist.rows, 320);
  assert.equal(hist.prunedTotal, 1500);
  assert.equal(hist.retentionDays, 90);
  assert.equal(hist.oldestStartedAt, new Date(OLD).toISOString(), 'the open row started first');
  assert.equal(hist.lastError, null);
  assert.ok(hist.dbBytes > 0);
  const metrics = await h.registry.metrics();
  assert.match(metrics, /^turn_monitor_usage_pruned_total 1500$/m);
  assert.match(metrics, /^turn_monitor_usage_db_bytes [1-9]\d*$/m);
  assert.ok((e.vacuumedPages as number) > 0, 'freed pages given back');
  assert.equal(h.db.pragma('freelist_count', { simple: true }), 0);
});

test('rows closed at the same instant (a run closed when turnserver exited) span batches without one lost', async (t) => {
  const h = retention(
    t,
    {
      exportEnabled: true,
      fill: (db) => {
        insertRows(db, { run: 'crashed', n: 350, startedAt: OLD, endedAt: OLD + 60_000, stepMs: 0 });
        db.exec(OUTBOX);
        // Every seventh still unshipped.
        db.exec(`INSERT INTO export_outbox SELECT id, 1, 0 FROM allocations WHERE id % 7 = 0`);
      },
    },
    { batchRows: 40, maxBatchRows: 40 },
  );
  const e = await h.waitFor('retention-pruned');
  assert.equal(e.rows, 300);
  assert.equal(e.keptUnshipped, 50);
  assert.equal(countRows(h.db, 'crashed'), 50);
});

test('retentionDays null: nothing is pruned, the history is still counted', async (t) => {
  const h = retention(t, { retentionDays: null, fill: history });
  await h.waitFor('history-counted');
  await sleep(50);
  assert.equal(h.retention.history().rows, 1820);
  assert.equal(countRows(h.db, 'old'), 1500);
  assert.ok(!h.logs.some((l) => l.event === 'retention-pruned' || l.event === 'retention-pass'));
});

const OUTBOX = `CREATE TABLE export_outbox (alloc_id INTEGER PRIMARY KEY, version INTEGER NOT NULL, marked_at INTEGER NOT NULL)`;
const markRun = (db: Database.Database, run: string) =>
  db.exec(`INSERT INTO export_outbox SELECT id, 1, 0 FROM allocations WHERE run = '${run}'`);

test('export on: no outbox yet means nothing has shipped; marked rows are kept until their mark is gone', async (t) => {
  const h = retention(t, {
    exportEnabled: true,
    fill: (db) => {
      history(db);
      insertRows(db, { run: 'unshipped', n: 200, startedAt: OLD, endedAt: OLD + 30_000, prefix: 'u' });
    },
  });
  await h.waitFor('retention-waiting');
  await sleep(60);
  assert.equal(countRows(h.db, 'old'), 1500, 'export on, outbox not there: wait');
  // The export's first start: its table, every record marked; then all but 'unshipped' shipped.
  h.db.exec(OUTBOX);
  markRun(h.db, 'unshipped');
  const first = await h.waitFor('retention-pruned');
  assert.equal(first.rows, 1500);
  assert.equal(first.keptUnshipped, 200);
  assert.equal(countRows(h.db, 'unshipped'), 200);
  // They ship: the watch on the first one's mark starts the next pass at once.
  const from = h.logs.length;
  h.db.exec(`DELETE FROM export_outbox`);
  const second = await h.waitFor('retention-pruned', from);
  assert.equal(second.rows, 200);
  assert.equal(countRows(h.db, 'unshipped'), 0);
  assert.equal(countRows(h.db, 'recent'), 300);
  assert.equal(h.retention.history().rows, 320);
});

test('export off with an outbox left from before: old rows go, their marks with them', async (t) => {
  const h = retention(t, {
    fill: (db) => {
      history(db);
      db.exec(OUTBOX);
      markRun(db, 'old');
      markRun(db, 'recent');
    },
  });
  await h.waitFor('retention-pruned');
  assert.equal(countRows(h.db, 'old'), 0);
  assert.equal(h.db.prepare('SELECT count(*) FROM export_outbox').pluck().get(), 300, 'only the recent marks stay');
});

/** 200 days of hourly rows for two users (the table is the stats schema's). */
function hours(db: Database.Database): void {
  const cols = db.prepare(`SELECT name FROM pragma_table_info('unattributed_hourly')`).pluck().all() as string[];
  const ins = db.prepare(
    `INSERT INTO unattributed_hourly (${cols.join(', ')}) VALUES (${cols
      .map((c) => (c === 'hour' ? '@hour' : c === 'username' ? '@user' : c === 'realm' ? "'r'" : '1'))
      .join(', ')})`,
  );
  for (let i = 0; i < 24 * 200; i++) for (const user of ['u1', 'u2']) ins.run({ hour: NOW - i * 3_600_000, user });
}
const HOURS_KEPT = 2 * (24 * 90 + 1);
const hourCount = (db: Database.Database, where = '1') =>
  db.prepare(`SELECT count(*) FROM unattributed_hourly WHERE ${where}`).pluck().get() as number;
const HOURLY_OUTBOX = `CREATE TABLE export_outbox_hourly (hour INTEGER NOT NULL, realm TEXT NOT NULL,
  username TEXT NOT NULL, version INTEGER NOT NULL, marked_at INTEGER NOT NULL, PRIMARY KEY (hour, realm, username))`;

test('unattributed_hourly: hours before the cutoff are pruned, in key order', async (t) => {
  const h = retention(t, { fill: hours }, { maxBatchRows: 100 });
  const e = await h.waitFor('retention-pruned');
  assert.equal(e.hourlyRows, 2 * 24 * 200 - HOURS_KEPT);
  assert.equal(hourCount(h.db, `hour < ${NOW - 90 * DAY_MS}`), 0);
  assert.equal(hourCount(h.db), HOURS_KEPT);
  const plan = (h.db.prepare(`EXPLAIN QUERY PLAN ${SCAN_HOURLY}`).all(0, 0, '', '', 10) as { detail: string }[])
    .map((r) => r.detail)
    .join('\n');
  assert.match(plan, /USING (COVERING )?INDEX sqlite_autoindex_unattributed_hourly_1/, plan);
  assert.doesNotMatch(plan, /TEMP B-TREE/, plan);
});

test('unattributed_hourly with the export on: marked hours stay; no hourly outbox yet, nothing goes', async (t) => {
  const h = retention(t, {
    exportEnabled: true,
    fill: (db) => {
      hours(db);
      db.exec(OUTBOX);
    },
  });
  const first = await h.waitFor('retention-pass');
  assert.equal(first.hourlyRows, 0, 'export_outbox_hourly does not exist: nothing shipped');
  assert.equal(hourCount(h.db), 2 * 24 * 200);
  await h.retention.stop();

  const h2 = retention(t, {
    exportEnabled: true,
    fill: (db) => {
      hours(db);
      db.exec(OUTBOX);
      db.exec(HOURLY_OUTBOX);
      db.exec(
        `INSERT INTO export_outbox_hourly SELECT hour, realm, username, 1, 0 FROM unattributed_hourly WHERE username = 'u2'`,
      );
    },
  });
  const e = await h2.waitFor('retention-pruned');
  assert.equal(e.hourlyRows, 24 * 200 - HOURS_KEPT / 2);
  assert.equal(e.keptHourlyUnshipped, 24 * 200 - HOURS_KEPT / 2);
  assert.equal(hourCount(h2.db, "username = 'u2'"), 24 * 200, 'unshipped: all kept');
});

test('unattributed_hourly with the export off: hours go with their marks', async (t) => {
  const h = retention(t, {
    fill: (db) => {
      hours(db);
      db.exec(HOURLY_OUTBOX);
      db.exec(`INSERT INTO export_outbox_hourly SELECT hour, realm, username, 1, 0 FROM unattributed_hourly`);
    },
  });
  await h.waitFor('retention-pruned');
  assert.equal(hourCount(h.db), HOURS_KEPT);
  assert.equal(h.db.prepare('SELECT count(*) FROM export_outbox_hourly').pluck().get(), HOURS_KEPT);
});

test('another process holds the write lock: one warning per failure streak, no wait, pruned once it is free', async (t) => {
  let holder: Database.Database | null = null;
  const h = retention(t, {
    fill: (db) => {
      history(db);
      holder = new Database(db.name);
      holder.exec('BEGIN IMMEDIATE');
    },
  });
  t.after(() => holder?.close());
  const failed = await h.waitFor('retention-failed');
  assert.match(String(failed.code), /SQLITE_BUSY/);
  await h.waitFor('retention-retry-failed');
  await sleep(100);
  assert.equal(h.logs.filter((l) => l.event === 'retention-failed').length, 1, 'warned once');
  assert.ok(h.logs.filter((l) => l.event === 'retention-retry-failed').length >= 2);
  assert.match(String(h.retention.history().lastError), /locked|busy/i);
  // Never waited on the lock (busy_timeout 0 around its steps), and the store's own timeout is back.
  assert.equal(h.db.pragma('busy_timeout', { simple: true }), 5000);
  assert.equal(h.db.pragma('wal_autocheckpoint', { simple: true }), 1000);
  holder!.exec('ROLLBACK');
  await h.waitFor('retention-recovered');
  await h.waitFor('retention-pruned');
  assert.equal(countRows(h.db, 'old'), 0);
  assert.equal(h.retention.history().lastError, null);
});

test('stop is idempotent and clears the timer', async (t) => {
  const h = retention(t, { fill: history }, { gapMs: 50 });
  await Promise.all([h.retention.stop(), h.retention.stop()]);
  await sleep(120);
  assert.equal(countRows(h.db, 'old'), 1500);
});

test('checkpoint worker: checkpoints the WAL on its own connection, closes its thread', async (t) => {
  const store = new UsageStore(tempDb(t));
  t.after(() => store.close());
  store.db.pragma('wal_autocheckpoint = 0');
  insertRows(store.db, { run: 'r', n: 2000, startedAt: NOW, endedAt: NOW });
  const c = new Checkpointer(store.db.name);
  const r = await c.checkpoint();
  assert.ok(r.frames > 0 && r.copied === r.frames, JSON.stringify(r));
  await c.close();
  await assert.rejects(c.checkpoint(), /exited/);
});

test('the checkpoint worker cannot start: one warning, checkpoints on the event loop, pruning goes on', async (t) => {
  const h = retention(t, { fill: history, dbFile: '/nonexistent/usage.db' });
  const e = await h.waitFor('retention-pruned');
  assert.equal(e.rows, 1500);
  assert.equal(h.logs.filter((l) => l.event === 'checkpoint-worker-failed').length, 1);
  assert.equal(h.db.pragma('wal_autocheckpoint', { simple: true }), 1000);
});
