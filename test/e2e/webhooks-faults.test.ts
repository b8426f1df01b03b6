import assert from 'node:assert/strict';
import { harnessTest } from '../harness/harness.js';
import { monitorBin, startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';
import { STATS_USER as USER, statsConfig } from '../harness/statsdb.js';
import { WebhookReceiver, type Delivery } from '../harness/webhook-receiver.js';
import { waitUntil } from '../../src/process/wait.js';
import type { Harness } from '../harness/harness.js';

// What a receiver that says no, or says nothing, gets: retries with the same webhook-id, failures
// kept and replayed, no redirect followed.

const webhookConfig = (r: WebhookReceiver, extra: Record<string, unknown> = {}) => ({
  http: statsConfig.http,
  turnserver: statsConfig.turnserver,
  webhooks: { endpoints: [{ url: r.url, secret: r.secret, events: ['*'], ...extra }] },
});

const relay = async (h: Harness, m: MonitorProcess, peerPort: number, clients = 1) => {
  const out = await runUclient(h, { turnPort: m.turnPort, peerPort, ...USER, clients, messages: 10, length: 100 });
  assert.equal(out.code, 0, out.output);
};

const endpointHealth = async (m: MonitorProcess) => (await m.health()).body.webhooks.endpoints[0];

const cli = async (h: Harness, m: MonitorProcess, ...args: string[]) => {
  const r = await h.run('webhooks-cli', process.execPath, [monitorBin, 'webhooks', '--config', m.configFile, ...args]);
  assert.equal(r.code, 0, r.output);
  return r.output;
};

harnessTest(
  'a receiver answering 500 three times, then 200: delivered with the same webhook-id every time, accepted once; its allocation.ended waits for it',
  async (h) => {
    const peer = await startPeer(h);
    const r = await WebhookReceiver.start(h);
    let target: string | null = null;
    r.respond = (d, seen) => {
      if (target === null && d.event.type === 'allocation.started') target = d.id;
      return d.id === target && seen < 3 ? 500 : 200;
    };
    const m = await startMonitor(h, webhookConfig(r));
    await relay(h, m, peer.port);
    await r.waitFor(
      'the event that failed three times, accepted',
      () => target !== null && r.acceptedIds().has(target),
      20_000,
    );
    const attempts = r.deliveries.filter((d) => d.id === target);
    assert.deepEqual(
      attempts.map((d) => d.status),
      [500, 500, 500, 200],
    );
    assert.equal(new Set(attempts.map((d) => d.raw)).size, 1, 'the same body every time');
    assert.equal(r.accepted().filter((d) => d.id === target).length, 1, 'accepted once');
    const gaps = attempts.slice(1).map((d, i) => d.receivedAt - attempts[i].receivedAt);
    assert.ok(
      gaps.every((g) => g >= 400),
      `backed off between attempts: ${gaps.join(', ')} ms`,
    );
    // The allocation's end (if it ended) came only after its start was accepted.
    const started = attempts[3];
    const ended = r
      .ofType('allocation.ended')
      .find(
        (d) =>
          d.event.data.allocationId === started.event.data.allocationId && d.event.data.run === started.event.data.run,
      );
    if (ended) assert.ok(r.deliveries.indexOf(ended) > r.deliveries.indexOf(started), 'ended after started');
    const metrics = (await m.get('/metrics')).text;
    assert.match(metrics, /turn_monitor_webhook_deliveries_total\{endpoint="[^"]+",result="retry"\} [3-9]/);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 60_000 },
);

harnessTest(
  'a receiver that hangs: the request times out (timeoutMs) and is retried; a 3xx is not followed and says so in lastError',
  async (h) => {
    const r = await WebhookReceiver.start(h);
    // The first attempt of everything hangs; later ones are redirected until `fixed`.
    let fixed = false;
    r.respond = (_d, seen) =>
      seen === 0
        ? 'hang'
        : fixed
          ? 200
          : { status: 302, headers: { location: 'https://elsewhere.example/hook?token=x' } };
    const m = await startMonitor(h, webhookConfig(r, { timeoutMs: 1000 }));
    await r.waitFor(
      'turnserver.ready tried twice',
      () => r.deliveries.filter((d) => d.event.type === 'turnserver.ready').length >= 2,
    );
    const [first, second] = r.deliveries.filter((d) => d.event.type === 'turnserver.ready');
    assert.equal(first.id, second.id);
    assert.ok(second.receivedAt - first.receivedAt >= 1000, 'retried after the timeout');
    let last: { lastError: string | null; pending: number } = { lastError: null, pending: 0 };
    await waitUntil(
      'lastError says the redirect was not followed',
      async () =>
        /HTTP 302: redirect to https:\/\/elsewhere\.example\/hook\?… not followed/.test(
          (last = await endpointHealth(m)).lastError ?? '',
        ),
      10_000,
    );
    assert.ok(last.pending >= 1, 'still pending: retried');
    assert.equal(
      r.deliveries.some((d) => d.status === 200),
      false,
    );
    fixed = true;
    await r.waitFor('delivered once the receiver answers 200', () => r.acceptedIds().has(first.id), 20_000);
    await waitUntil('lastError cleared', async () => (await endpointHealth(m)).lastError === null, 5000);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 60_000 },
);

harnessTest(
  'a 410: failed at once, listed by `turn-monitor webhooks --failed`, delivered by --replay ID and --replay-failed with the same webhook-id',
  async (h) => {
    const peer = await startPeer(h);
    const r = await WebhookReceiver.start(h);
    let gone = true;
    r.respond = () => (gone ? 410 : 200);
    const m = await startMonitor(h, webhookConfig(r));
    await relay(h, m, peer.port);
    // The relay's allocation ended (the probe allocation uclient leaves stays open): everything it makes was refused.
    await waitUntil(
      'every event refused and marked failed',
      async () =>
        r.deliveries.some((d) => d.event.type === 'allocation.ended') &&
        (await endpointHealth(m)).failed === new Set(r.deliveries.map((d) => d.id)).size,
      15_000,
    );
    const refused = new Set(r.deliveries.map((d) => d.id));
    for (const id of refused) assert.equal(r.deliveries.filter((d) => d.id === id).length, 1, 'no retry after a 410');
    assert.match((await endpointHealth(m)).lastError, /^HTTP 410/);

    const failed = JSON.parse(await cli(h, m, '--failed', '--json')) as {
      id: string;
      attempts: number;
      error: string;
    }[];
    assert.deepEqual(new Set(failed.map((f) => f.id)), refused);
    assert.ok(failed.every((f) => f.attempts === 1 && /^HTTP 410/.test(f.error)));
    assert.match(await cli(h, m, '--failed'), /EVENT\s+TYPE\s+ENDPOINT\s+FAILED AT\s+ATTEMPTS\s+ERROR/);
    const summary = await cli(h, m);
    assert.match(summary, new RegExp(`${r.url.replace(/[/.]/g, '\\$&')}\\s+0\\s+${failed.length}\\s`));

    gone = false;
    const one = failed[0].id;
    assert.match(await cli(h, m, '--replay', one), /^1 failed delivery queued again/m);
    await r.waitFor('the replayed event', () => r.acceptedIds().has(one));
    assert.match(
      await cli(h, m, '--replay-failed', '--endpoint', r.url),
      new RegExp(`^${failed.length - 1} failed deliveries queued again`, 'm'),
    );
    await r.waitFor('every failed event delivered', () => failed.every((f) => r.acceptedIds().has(f.id)));
    const replayed = (id: string) => r.deliveries.filter((d: Delivery) => d.id === id);
    assert.ok(
      failed.every((f) => replayed(f.id)[0].raw === replayed(f.id)[1].raw),
      'the same body again',
    );
    await waitUntil('no failed event left', async () => (await endpointHealth(m)).failed === 0, 5000);
    assert.deepEqual(JSON.parse(await cli(h, m, '--failed', '--json')), []);
    // A replay of something unknown is an error, exit 1.
    const bad = await h.run('webhooks-cli', process.execPath, [
      monitorBin,
      'webhooks',
      '--config',
      m.configFile,
      '--replay',
      'evt_nope',
    ]);
    assert.equal(bad.code, 1);
    assert.match(bad.output, /no failed event evt_nope in the outbox/);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 60_000 },
);
