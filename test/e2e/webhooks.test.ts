import assert from 'node:assert/strict';
import os from 'node:os';
import { harnessTest } from '../harness/harness.js';
import { startMonitor } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';
import { STATS_USER as USER, statsConfig, usage } from '../harness/statsdb.js';
import { WebhookReceiver } from '../harness/webhook-receiver.js';
import { waitUntil } from '../../src/process/wait.js';

// Webhooks against the real binaries: turnserver, uclient traffic, and a receiver that verifies
// every signature with the `standardwebhooks` package.

const webhookConfig = (r: WebhookReceiver, extra: Record<string, unknown> = {}) => ({
  http: statsConfig.http,
  turnserver: statsConfig.turnserver,
  webhooks: { endpoints: [{ url: r.url, secret: r.secret, events: ['*'], ...extra }] },
});

harnessTest(
  'a relay: allocation.started then allocation.ended, signed, whose data equals the stored record',
  async (h) => {
    const peer = await startPeer(h);
    const r = await WebhookReceiver.start(h);
    const m = await startMonitor(h, webhookConfig(r));
    const relay = await runUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      messages: 20,
      length: 100,
    });
    assert.equal(relay.code, 0, relay.output);

    let closed: any[] = [];
    await waitUntil(
      'a freed allocation recorded',
      async () => (closed = (await usage(m)).filter((x) => x.endReason === 'deleted')).length > 0,
      20_000,
    );
    const a = closed[0];
    const of = (type: string) =>
      r.ofType(type).filter((d) => d.event.data.allocationId === a.allocationId && d.event.data.run === a.run);
    await r.waitFor('its allocation.ended', () => of('allocation.ended').length > 0);
    const [started] = of('allocation.started');
    const [ended] = of('allocation.ended');
    assert.ok(started, 'allocation.started delivered');
    assert.ok(r.deliveries.indexOf(started) < r.deliveries.indexOf(ended), 'started before ended');
    // The data of allocation.ended is the stored record (usage --format json), every key.
    assert.deepEqual(ended.event.data, a);
    assert.deepEqual(started.event.data, {
      allocationId: a.allocationId,
      run: a.run,
      realm: a.realm,
      username: a.username,
      clientId: a.clientId,
      transport: a.transport,
      startedAt: a.startedAt,
    });
    assert.equal(ended.event.timestamp, a.endedAt);
    assert.equal(started.event.timestamp, a.startedAt);
    for (const d of [started, ended]) {
      assert.equal(d.id, d.event.id, 'webhook-id is the event id');
      assert.match(d.id, /^evt_[0-9a-f]{8}_/);
      assert.equal(d.contentType, 'application/json');
      assert.match(d.signature, /^v1,[A-Za-z0-9+/]+=*$/);
      assert.ok(Math.abs(Number(d.timestamp) - Date.now() / 1000) < 60, 'webhook-timestamp is the send time');
      assert.equal(d.event.hostId, `${os.hostname()}:${m.turnPort}`, 'hostId: the discovery node name');
    }
    assert.equal(r.rejected, 0, 'every signature verified');

    await waitUntil('nothing pending', async () => (await m.health()).body.webhooks.endpoints[0].pending === 0, 5000);
    const wh = (await m.health()).body.webhooks;
    assert.equal(wh.status, 'ok');
    assert.equal(wh.endpoints[0].url, r.url);
    assert.equal(wh.endpoints[0].failed, 0);
    assert.ok(wh.endpoints[0].lastDeliveredAt);
    const metrics = (await m.get('/metrics')).text;
    assert.match(
      metrics,
      new RegExp(`turn_monitor_webhook_deliveries_total\\{endpoint="${r.url}",result="delivered"\\} [1-9]`),
    );
    assert.match(metrics, new RegExp(`turn_monitor_webhook_pending\\{endpoint="${r.url}"\\} 0`));
    assert.match(metrics, /turn_monitor_webhook_delivery_seconds_count [1-9]/);
    assert.equal((await m.stop()).code, 0);
    // The stop's own events went out before the monitor exited.
    assert.ok(r.ofType('turnserver.exited').some((d) => d.event.data.planned === true));
    assert.equal(m.output().includes(r.secret.slice(6)), false, 'the secret is never logged');
  },
  { timeout: 60_000 },
);
