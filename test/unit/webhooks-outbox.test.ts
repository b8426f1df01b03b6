import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { newRecord } from '../../src/stats/allocation-record.js';
import type { AllocationRecord } from '../../src/stats/allocation-record.js';
import { rowFromDb, type DbRow } from '../../src/stats/allocation-row.js';
import { UsageStore } from '../../src/stats/store.js';
import { DeliveryStore } from '../../src/webhooks/delivery-store.js';
import { OutboxAdmin } from '../../src/webhooks/outbox-admin.js';
import { WebhookOutbox } from '../../src/webhooks/outbox.js';

const A = 'http://a.example/hook';
const B = 'http://b.example/hook';

function fresh(endpoints = [{ name: A, events: ['*'] }]) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'wh-outbox-'));
  const file = path.join(dir, 'usage.db');
  const store = new UsageStore(file);
  const outbox = new WebhookOutbox(file, 'host-1:3478', endpoints);
  // The delivery thread's side: it gives the triggers' events their deliveries and sends them.
  const thread = new DeliveryStore(file, 'host-1:3478');
  return {
    file,
    store,
    outbox,
    thread,
    /** What endpoint A is sent, in order, as if it answered 2xx to everything (those are then gone). */
    events: () => {
      thread.expand(100_000);
      const ep = outbox.endpointIds.get(A)!;
      const out: { seq: number; id: string; type: string; body: string }[] = [];
      for (;;) {
        const due = thread.due(ep, Number.MAX_SAFE_INTEGER, 1000);
        if (due.length === 0) return out;
        for (const d of due) {
          const { id, body } = d.message()!;
          out.push({ seq: d.seq, id, type: JSON.parse(body).type, body });
        }
        thread.apply(due.map((d) => ({ endpointId: ep, seq: d.seq, kind: 'delivered' as const })));
      }
    },
    rows: () => store.db.prepare(`SELECT count(*) FROM webhook_events`).pluck().get() as number,
    done: () => {
      thread.close();
      outbox.close();
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let n = 0;
function record(over: Partial<AllocationRecord> = {}): AllocationRecord {
  const r = newRecord(
    {
      kind: 'status',
      status: 'new',
      source: 'redis',
      realm: 'example.org',
      username: '1795350000:alice',
      allocationId: String(++n).padStart(18, '0'),
      transport: 'UDP',
      local: null,
      remote: null,
      lifetime: 600,
      at: 1_765_000_000_123 + n,
    } as Parameters<typeof newRecord>[0],
    'run-1',
    'redis',
  );
  return Object.assign(r, over);
}

test('triggers: a stored allocation gets allocation.started, its close allocation.ended whose data is the stored row', () => {
  const t = fresh();
  const r = record();
  t.store.write([r]);
  t.store.write([r]); // a checkpoint: no second event
  const [started, ...none] = t.events();
  assert.equal(started.type, 'allocation.started');
  assert.deepEqual(none, []);
  Object.assign(r, { endedAt: r.startedAt + 5000, endReason: 'deleted', client: [1, 2, 3, 4], peer: [5, 6, 7, 8] });
  t.store.write([r]);
  t.store.write([r]);
  const [ended, ...more] = t.events();
  assert.deepEqual(more, []);
  assert.equal(ended.type, 'allocation.ended');
  const stored = rowFromDb(t.store.db.prepare(`SELECT * FROM allocations`).get() as DbRow);
  const body = JSON.parse(ended.body);
  assert.deepEqual(Object.keys(body), ['type', 'id', 'timestamp', 'hostId', 'data']);
  assert.deepEqual(body.data, stored, 'equal to the stored record, key for key');
  assert.equal(body.timestamp, stored.endedAt);
  assert.equal(body.hostId, 'host-1:3478');
  assert.equal(body.id, ended.id);
  assert.match(ended.id, /^evt_[0-9a-f]{8}_run-1_0+\d+_ended$/);
  assert.equal(started.id, ended.id.replace(/_ended$/, '_started'));
  assert.deepEqual(Object.keys(JSON.parse(started.body).data), [
    'allocationId',
    'run',
    'realm',
    'username',
    'clientId',
    'transport',
    'startedAt',
  ]);
  assert.equal(t.rows(), 0, 'delivered events are gone');
  // Closed at the first write (a short allocation): both, started first.
  t.store.write([record({ endedAt: 1_765_000_100_000, endReason: 'deleted' })]);
  assert.deepEqual(
    t.events().map((e) => e.type),
    ['allocation.started', 'allocation.ended'],
  );
  // Sessions that never allocated are no allocation: no event. Leftovers closed by a restart are.
  t.store.write([record({ kind: 'unattributed', endedAt: 1_765_000_100_000 })]);
  t.store.write([record()]);
  assert.equal(t.store.closeLeftovers(), 1);
  const last = t.events();
  assert.deepEqual(
    last.map((e) => e.type),
    ['allocation.started', 'allocation.ended'],
  );
  assert.equal(JSON.parse(last[1].body).data.endReason, 'monitor-restart');
  t.done();
});

test('subscriptions: an endpoint gets only its types; ended waits for its started at that endpoint only', () => {
  const t = fresh([
    { name: A, events: ['*'] },
    { name: B, events: ['allocation.ended'] },
  ]);
  const r = record();
  t.store.write([r]);
  t.store.write([Object.assign(r, { endedAt: r.startedAt + 10, endReason: 'deleted' })]);
  const [a, b] = [t.outbox.endpointIds.get(A)!, t.outbox.endpointIds.get(B)!];
  const d = t.thread;
  assert.equal(d.expand(100), 2, 'the two events got their deliveries');
  assert.equal(d.queued(), false);
  const now = Date.now() + 1000;
  assert.deepEqual(
    d.due(a, now, 10).map((x) => x.message()!.id.split('_').pop()),
    ['started'],
    'ended waits while started is pending at A',
  );
  assert.deepEqual(
    d.due(b, now, 10).map((x) => x.message()!.id.split('_').pop()),
    ['ended'],
    'B never had the started',
  );
  d.apply([{ endpointId: a, seq: d.due(a, now, 1)[0].seq, kind: 'delivered' }]);
  assert.deepEqual(
    d.due(a, now, 10).map((x) => x.message()!.id.split('_').pop()),
    ['ended'],
  );
  // Delivered everywhere: the event goes with its last delivery.
  const ended = d.due(a, now, 1)[0];
  d.apply([{ endpointId: a, seq: ended.seq, kind: 'delivered' }]);
  assert.equal(t.rows(), 1);
  d.apply([{ endpointId: b, seq: ended.seq, kind: 'delivered' }]);
  assert.equal(t.rows(), 0);
  t.done();
});

test('events of no record: written once per key, in order per order key; none when no endpoint takes the type', () => {
  const t = fresh([{ name: A, events: ['host.*', 'certificate.expiring'] }]);
  const first = t.outbox.record('host.draining', { then: 'stop' }, { key: 'since-1', order: 'host' });
  assert.ok(first);
  assert.equal(t.outbox.record('host.draining', { then: 'stop' }, { key: 'since-1', order: 'host' }), null, 'same key');
  assert.ok(t.outbox.record('host.drained', { then: 'stop' }, { order: 'host' }));
  assert.equal(t.outbox.record('turnserver.ready', {}), null, 'not subscribed');
  const d = t.thread;
  const ep = t.outbox.endpointIds.get(A)!;
  const due = d.due(ep, Date.now() + 1000, 10);
  assert.deepEqual(
    due.map((x) => x.message()!.id),
    [first],
    'drained waits for draining',
  );
  d.apply([{ endpointId: ep, seq: due[0].seq, kind: 'retry', nextAt: Date.now() + 60_000, error: 'HTTP 500' }]);
  assert.deepEqual(d.due(ep, Date.now() + 1000, 10), [], 'still waiting while draining backs off');
  t.done();
});

test('disk full while writing the outbox: the whole transaction fails, never a record without its event', () => {
  const t = fresh();
  const pages = t.store.db.pragma('page_count', { simple: true }) as number;
  t.store.db.pragma(`max_page_count = ${pages + 8}`);
  let failed = false;
  for (let i = 0; i < 2000 && !failed; i++) {
    try {
      t.store.write([record({ username: `1795350000:${'x'.repeat(200)}-${i}` })]);
    } catch (err) {
      assert.match((err as Error).message, /full/i);
      failed = true;
    }
  }
  assert.ok(failed, 'the database filled up');
  const allocations = t.store.db.prepare(`SELECT count(*) FROM allocations`).pluck().get() as number;
  const started = t.store.db
    .prepare(`SELECT count(*) FROM webhook_queue WHERE type = 'allocation.started'`)
    .pluck()
    .get() as number;
  assert.ok(allocations > 0);
  assert.equal(started, allocations, 'every stored allocation has its event, and no event lacks its allocation');
  t.done();
});

test('replay: failed deliveries queued again with the same id; endpoints taken out of the config fail their pending ones', () => {
  const t = fresh([
    { name: A, events: ['*'] },
    { name: B, events: ['*'] },
  ]);
  const id = t.outbox.record('host.drained', { then: 'stop' })!;
  const d = t.thread;
  const [a] = [t.outbox.endpointIds.get(A)!];
  const row = d.due(a, Date.now() + 1000, 1)[0];
  d.apply([{ endpointId: a, seq: row.seq, kind: 'failed', error: 'HTTP 410', at: Date.now() }]);
  t.outbox.close();
  // Restarted with B taken out: B's pending delivery is failed (replayable), not lost.
  const again = new WebhookOutbox(t.file, 'host-1:3478', [{ name: A, events: ['*'] }]);
  const admin = new OutboxAdmin(t.file);
  assert.deepEqual(
    admin.failed().map((f) => [f.id, f.endpoint, f.error]),
    [
      [id, A, 'HTTP 410'],
      [id, B, 'endpoint no longer configured'],
    ],
  );
  assert.deepEqual(
    admin.summary([A]).map((s) => [s.url, s.configured, s.pending, s.failed]),
    [
      [A, true, 0, 1],
      [B, false, 0, 1],
    ],
  );
  assert.equal(admin.replay({ id, endpoints: [A] }), 1);
  assert.equal(admin.replay({ endpoints: [A] }), 0, 'nothing failed left at A');
  const replayed = d.due(a, Date.now() + 1000, 1)[0];
  assert.equal(replayed.message()!.id, id);
  assert.equal(replayed.attempts, 0);
  // An allocation event: listed and replayed by the id it is sent with.
  t.store.write([record()]);
  d.expand(10);
  const alloc = d.due(a, Date.now() + 1000, 10).find((x) => x.message()!.id !== id)!;
  d.apply([{ endpointId: a, seq: alloc.seq, kind: 'failed', error: 'HTTP 400', at: Date.now() }]);
  assert.ok(admin.failed([A][0]).some((f) => f.id === alloc.message()!.id && f.type === 'allocation.started'));
  assert.ok(admin.has(alloc.message()!.id));
  assert.equal(admin.replay({ id: alloc.message()!.id, endpoints: [A] }), 1);
  admin.close();
  again.close();
  d.close();
  t.store.close();
});

test('webhooks turned off: the triggers go, the stats writes are as before', () => {
  const t = fresh();
  t.outbox.close();
  WebhookOutbox.uninstall(t.file);
  t.store.write([record()]);
  assert.equal(t.rows(), 0);
  t.store.close();
});
