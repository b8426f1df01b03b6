import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { rowFromDb, type DbRow } from '../../src/stats/allocation-row.js';
import { timed, usageFromRows } from '../../src/stats/query.js';
import { UsageStore } from '../../src/stats/store.js';
import { readView } from '../../src/stats/usage/usage-rows.js';
import type { Keyset, UsageFilter, UsageView } from '../../src/stats/usage/usage-sql.js';

const NOW = Date.parse('2026-06-01T12:00:00Z');

/** Random allocations of a few clients, overlapping, some open, some long. */
function fill(store: UsageStore, n: number, seed = 7): void {
  let x = seed;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const insert = store.db.prepare(`INSERT INTO allocations (run, allocation_id, kind, realm, username, client_id,
    started_at, ended_at, last_event_at, end_reason, rcvp, rcvb, sentp, sentb, peer_rcvp, peer_rcvb, peer_sentp,
    peer_sentb, complete) VALUES (@run, @id, 'allocation', @realm, @user, @user, @s, @e, @s, @reason,
    @c, @c, @c, @c, @p, @p, @p, @p, @complete)`);
  for (let i = 0; i < n; i++) {
    const s = NOW - Math.floor(rnd() * 3 * 86_400_000);
    const open = rnd() < 0.05;
    const e = open ? null : s + Math.floor(rnd() < 0.1 ? rnd() * 20 * 3_600_000 : rnd() * 600_000);
    insert.run({
      run: 'r1',
      id: String(i).padStart(18, '0'),
      realm: rnd() < 0.2 ? null : 'example.org',
      user: `c${Math.floor(rnd() * 6)}`,
      s,
      e,
      reason: open ? null : 'deleted',
      c: Math.floor(rnd() * 1000),
      p: rnd() < 0.3 ? 0 : Math.floor(rnd() * 1000),
      complete: rnd() < 0.9 ? 1 : 0,
    });
  }
}

/** Today's views computed in JavaScript over every row: the reference the SQL must equal. */
function reference(store: UsageStore, view: UsageView, f: UsageFilter) {
  const rows = (
    store.db.prepare(`SELECT * FROM allocations WHERE kind = 'allocation' ORDER BY started_at, id`).all() as DbRow[]
  )
    .filter((r) => f.to === undefined || (r.started_at as number) < f.to)
    .filter((r) => f.from === undefined || r.ended_at === null || (r.ended_at as number) >= f.from)
    .filter((r) => f.user === undefined || r.client_id === f.user || r.username === f.user)
    .map((r) => timed(rowFromDb(r), r.started_at as number, r.ended_at as number | null));
  return usageFromRows(rows, view, NOW);
}

const sortRows = (rows: Record<string, unknown>[]) =>
  [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

test('the SQL views equal the JavaScript views they replace, for any window, and pages join up exactly', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'usage-sql-'));
  const store = new UsageStore(path.join(dir, 'usage.db'));
  try {
    fill(store, 3000);
    const windows: UsageFilter[] = [
      {},
      { from: NOW - 86_400_000 },
      { from: NOW - 2 * 86_400_000, to: NOW - 86_400_000 },
      { from: NOW - 86_400_000, user: 'c3' },
    ];
    for (const f of windows) {
      for (const view of ['allocation', 'session', 'user'] as const) {
        const all = [...readView(store.db, { view, filter: f, after: null, limit: null, now: NOW })].map((x) => x.row);
        assert.deepEqual(sortRows(all), sortRows(reference(store, view, f)), `${view} ${JSON.stringify(f)}`);
        // Paged by keyset, 97 at a time: the same rows, in the same order, each once.
        const paged: Record<string, unknown>[] = [];
        let key: Keyset | null = null;
        for (;;) {
          const page: { row: Record<string, unknown>; key: Keyset }[] = [
            ...readView(store.db, { view, filter: f, after: key, limit: 97, now: NOW }),
          ];
          paged.push(...page.map((x) => x.row));
          if (page.length < 97) break;
          key = page[page.length - 1].key;
        }
        assert.deepEqual(paged, all, `${view} paged`);
      }
    }
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the unattributed view: hourly sums, with stored never-allocated records folded into their hour', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'usage-sql-'));
  const store = new UsageStore(path.join(dir, 'usage.db'));
  try {
    const hour = Date.parse('2026-06-01T10:00:00Z');
    const hourly = store.db.prepare(`INSERT INTO unattributed_hourly (hour, realm, username, sessions, rcvp, rcvb,
      sentp, sentb, peer_rcvp, peer_rcvb, peer_sentp, peer_sentb) VALUES (?, 'r', ?, ?, 1, 20, 1, 88, 0, 0, 0, 0)`);
    hourly.run(hour, '', 3);
    hourly.run(hour, 'intruder', 1);
    hourly.run(hour + 3_600_000, '', 2);
    store.db
      .prepare(
        `INSERT INTO allocations (run, allocation_id, kind, realm, username, client_id, started_at, ended_at,
         last_event_at, rcvp, rcvb, sentp, sentb, peer_rcvp, peer_rcvb, peer_sentp, peer_sentb, complete)
         VALUES ('r1', '7', 'unattributed', 'r', '', '', ?, ?, ?, 1, 104, 0, 0, 5, 500, 5, 500, 1)`,
      )
      .run(hour + 60_000, hour + 120_000, hour + 120_000);
    const read = (filter: UsageFilter) =>
      [...readView(store.db, { view: 'unattributed', filter, after: null, limit: null, now: NOW })].map((x) => x.row);
    const rows = read({});
    assert.deepEqual(
      rows.map((r) => [r.hour, r.username, r.sessions, r.rcvb, r.peerRcvb]),
      [
        ['2026-06-01T10:00:00.000Z', '', 4, 20 + 104, 500],
        ['2026-06-01T10:00:00.000Z', 'intruder', 1, 20, 0],
        ['2026-06-01T11:00:00.000Z', '', 2, 20, 0],
      ],
    );
    // A window from inside an hour includes that hour; `user` picks a username.
    assert.equal(read({ from: hour + 1_800_000, to: hour + 3_600_000 }).length, 2);
    assert.deepEqual(
      read({ user: 'intruder' }).map((r) => r.sessions),
      [1],
    );
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
