import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { allocationRecord } from '../harness/export.js';
import { LocalQuotaStore } from '../../src/quotas/local-store.js';
import { periodBounds } from '../../src/quotas/period.js';
import { UsageStore } from '../../src/stats/store.js';

test("single host: a period's usage summed from usage.db on a thread, quotas from quotas.clients, state in a file", async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'quota-local-'));
  const file = path.join(dir, 'usage.db');
  const store = new UsageStore(file);
  const t = Date.UTC(2026, 11, 10);
  const rec = (id: string, clientId: string, bytes: number, startedAt = t, endedAt: number | null = t + 60_000) =>
    allocationRecord(id, {
      clientId,
      username: `1795348399:${clientId}`,
      startedAt,
      endedAt,
      lastEventAt: endedAt ?? startedAt,
      endReason: endedAt === null ? null : 'deleted',
      client: [1, bytes / 2, 1, bytes / 2],
    });
  store.write([
    rec('1', 'alice', 2000),
    rec('2', 'alice', 1000, t + 1, null), // open: its running counters count
    rec('3', 'bob', 500),
    rec('4', 'carol', 10_000),
    rec('5', 'alice', 99_999, Date.UTC(2026, 10, 1), Date.UTC(2026, 10, 2)), // last month
  ]);
  const quotas = new LocalQuotaStore(file, path.join(dir, 'quota-state.json'), { alice: 3000, carol: null });
  try {
    const { start, end } = periodBounds(t, 'month');
    const input = { period: 'month' as const, start, end, warnAt: 0.8, defaultBytes: 700 };
    const over = await quotas.over(input);
    assert.deepEqual(
      over.sort((a, b) => a.clientId.localeCompare(b.clientId)),
      [{ realm: 'test.local', clientId: 'alice', used: 3000, quota: 3000 }],
      'alice at her override; bob (500 of 700) under 80 %; carol has none',
    );
    assert.deepEqual(await quotas.usageOf('test.local', 'bob', input), { used: 500, quota: 700 });
    assert.deepEqual(await quotas.usageOf('test.local', 'carol', input), { used: 10_000, quota: null });
    const row = {
      realm: 'test.local',
      clientId: 'alice',
      periodStart: start,
      warned: true,
      exceeded: true,
      used: 3000,
      quota: 3000,
    };
    await quotas.save([row], []);
    assert.deepEqual(JSON.parse(await readFile(path.join(dir, 'quota-state.json'), 'utf8')), [row]);
    await quotas.save([], [{ realm: 'test.local', clientId: 'alice' }]);
    assert.deepEqual(await quotas.states(), []);
  } finally {
    await quotas.close();
    store.close();
    await rm(dir, { recursive: true, force: true });
  }
});
