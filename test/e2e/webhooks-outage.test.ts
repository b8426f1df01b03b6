import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { harnessTest, type Harness } from '../harness/harness.js';
import { startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';
import { STATS_USER as USER, statsConfig, usage } from '../harness/statsdb.js';
import { WebhookReceiver } from '../harness/webhook-receiver.js';
import { waitUntil } from '../../src/process/wait.js';
import { ALLOCATION_EVENT_ID } from '../../src/webhooks/outbox-sql.js';

// A receiver that is away, and a monitor killed with events waiting: nothing is lost, order holds.

const webhookConfig = (r: WebhookReceiver) => ({
  http: statsConfig.http,
  turnserver: statsConfig.turnserver,
  webhooks: { endpoints: [{ url: r.url, secret: r.secret, events: ['*'] }] },
});

const traffic = async (h: Harness, m: MonitorProcess, peerPort: number, clients: number) => {
  const out = await runUclient(h, { turnPort: m.turnPort, peerPort, ...USER, clients, messages: 10, length: 100 });
  assert.equal(out.code, 0, out.output);
};

/** Every stored allocation has its allocation.started accepted, and its allocation.ended once closed, in that order. */
async function assertAllAllocationEvents(m: MonitorProcess, r: WebhookReceiver): Promise<number> {
  const rows = await usage(m, '?from=2000-01-01T00:00:00Z');
  const key = (d: { event: { data: Record<string, unknown> } }) => `${d.event.data.run}/${d.event.data.allocationId}`;
  const first = (type: string) => {
    const out = new Map<string, number>();
    r.accepted().forEach((d, i) => {
      if (d.event.type === type && !out.has(key(d))) out.set(key(d), i);
    });
    return out;
  };
  await r.waitFor(
    'every allocation event delivered',
    () => {
      const started = first('allocation.started');
      const ended = first('allocation.ended');
      return rows.every(
        (a) =>
          started.has(`${a.run}/${a.allocationId}`) && (a.endedAt === null || ended.has(`${a.run}/${a.allocationId}`)),
      );
    },
    60_000,
  );
  const started = first('allocation.started');
  const ended = first('allocation.ended');
  for (const a of rows) {
    const k = `${a.run}/${a.allocationId}`;
    if (a.endedAt !== null) assert.ok(started.get(k)! < ended.get(k)!, `${k}: started accepted before ended`);
  }
  return rows.length;
}

harnessTest(
  'receiver down for 20 s during traffic: everything delivered after it is back, in order per allocation',
  async (h) => {
    const peer = await startPeer(h);
    const r = await WebhookReceiver.start(h);
    const m = await startMonitor(h, webhookConfig(r));
    await r.waitFor('turnserver.ready', () => r.ofType('turnserver.ready').length === 1);
    await r.down();
    const downAt = Date.now();
    while (Date.now() - downAt < 14_000) await traffic(h, m, peer.port, 3);
    await waitUntil(
      'pending while it is down',
      async () => (await m.health()).body.webhooks.endpoints[0].pending > 0,
      8000,
    );
    const during = (await m.health()).body.webhooks.endpoints[0];
    assert.equal(during.lastError, 'connection refused');
    while (Date.now() - downAt < 20_000) await new Promise((res) => setTimeout(res, 100));
    await r.up();
    const upAt = Date.now();
    const allocations = await assertAllAllocationEvents(m, r);
    assert.ok(allocations >= 6, `${allocations} allocations`);
    await waitUntil('nothing pending', async () => (await m.health()).body.webhooks.endpoints[0].pending === 0, 10_000);
    const health = (await m.health()).body.webhooks;
    assert.equal(health.status, 'ok');
    assert.equal(health.endpoints[0].failed, 0);
    assert.equal(r.rejected, 0);
    console.log(`receiver back → everything delivered in ${Date.now() - upAt} ms (${r.acceptedIds().size} events)`);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);

harnessTest(
  'monitor killed (kill -9) with 100+ events pending: every one delivered after its restart, none missing',
  async (h) => {
    const peer = await startPeer(h);
    const r = await WebhookReceiver.start(h);
    await r.down();
    const m = await startMonitor(h, webhookConfig(r));
    let pending = 0;
    while (pending < 100) {
      await traffic(h, m, peer.port, 20);
      await waitUntil(
        'the events written',
        async () => (pending = (await m.health()).body.webhooks.endpoints[0].pending) > 0,
        5000,
      );
    }
    m.tracked.child.kill('SIGKILL');
    await m.exited;
    // What was waiting at the kill, read from usage.db itself.
    const db = new Database(path.join(m.dataDir, 'usage.db'), { readonly: true });
    // Every event written (allocation events by the triggers, with the id they are sent with),
    // also those still in the triggers' queue.
    const waiting = db
      .prepare(
        `SELECT coalesce(ev.id, ${ALLOCATION_EVENT_ID}) FROM webhook_events ev LEFT JOIN allocations a ON a.id = ev.alloc_id
         UNION ALL
         SELECT ${ALLOCATION_EVENT_ID} FROM webhook_queue ev JOIN allocations a ON a.id = ev.alloc_id`,
      )
      .pluck()
      .all() as string[];
    db.close();
    assert.ok(waiting.length >= 100, `${waiting.length} events pending at the kill`);

    await r.up();
    const m2 = await startMonitor(h, {}, { rawConfig: m.config, configFile: m.configFile });
    await r.waitFor(
      'every event pending at the kill delivered',
      () => waiting.every((id) => r.acceptedIds().has(id)),
      30_000,
    );
    await assertAllAllocationEvents(m2, r);
    assert.equal(r.rejected, 0);
    console.log(`kill -9 with ${waiting.length} events pending: all ${waiting.length} delivered after the restart`);
    assert.equal((await m2.stop()).code, 0);
  },
  { timeout: 90_000 },
);
