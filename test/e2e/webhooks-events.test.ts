import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { linkPair, makePair } from '../harness/certs.js';
import { monitorBin, startMonitor, testConfig } from '../harness/monitor.js';
import { spawnUclient, startPeer } from '../harness/services.js';
import { STATS_API_KEY, statsConfig } from '../harness/statsdb.js';
import { newSecret, WebhookReceiver } from '../harness/webhook-receiver.js';
import { freePort } from '../../src/process/ports.js';
import { waitUntil } from '../../src/process/wait.js';

// The events that belong to no record: a revoke, a drain, a turnserver crash. And the secret: in
// no log line, and a bad one stops the monitor before it starts (exit 2, naming the key).

const auth = { authorization: `Bearer ${STATS_API_KEY}` };
const post = (path: string, body?: object) => ({
  method: 'POST',
  headers: { ...auth, 'content-type': 'application/json' },
  body: JSON.stringify(body ?? {}),
  path,
});

harnessTest(
  'a revoke, a drain and a turnserver crash each produce their event, in order; no secret in any log line',
  async (h) => {
    const peer = await startPeer(h);
    const r = await WebhookReceiver.start(h);
    const secretFile = path.join(h.dir, 'webhook.secret');
    writeFileSync(secretFile, `${r.secret}\n`, { mode: 0o600 });
    const m = await startMonitor(h, {
      http: statsConfig.http,
      turnserver: statsConfig.turnserver,
      credentials: { mode: 'secret' },
      webhooks: {
        endpoints: [{ url: r.url, secretFile, events: ['client.*', 'host.*', 'turnserver.*', 'allocation.ended'] }],
      },
    });
    const call = async (req: ReturnType<typeof post> | { method: string; headers: object; path: string }) => {
      const res = await m.get(req.path, req as RequestInit);
      assert.ok(res.status < 300, `${req.path}: ${res.status} ${res.text}`);
      return res.body;
    };

    // A revoke and its lift.
    await call(post('/clients/alice/revoke'));
    await call({ method: 'DELETE', headers: auth, path: '/clients/alice/revoke' });
    await r.waitFor('client.revoked, client.unrevoked', () => r.ofType('client.unrevoked').length === 1);
    const [revoked] = r.ofType('client.revoked');
    assert.equal(revoked.event.data.clientId, 'alice');
    assert.ok(Date.parse(revoked.event.data.until) > Date.parse(revoked.event.data.revokedAt));
    assert.ok(r.deliveries.indexOf(revoked) < r.deliveries.indexOf(r.ofType('client.unrevoked')[0]));

    // A drain that restarts turnserver: draining, the planned exit, ready again, drained.
    await call(post('/drain', { timeoutSec: 20, then: 'restart' }));
    await r.waitFor('host.drained', () => r.ofType('host.drained').length === 1, 20_000);
    const [draining] = r.ofType('host.draining');
    assert.equal(draining.event.data.then, 'restart');
    assert.equal(typeof draining.event.data.openAllocations, 'number');
    assert.ok(Date.parse(draining.event.data.deadline) - Date.parse(draining.event.data.since) === 20_000);
    assert.deepEqual(r.ofType('host.drained')[0].event.data, { then: 'restart', cancelled: 0, aborted: false });
    assert.ok(r.deliveries.indexOf(draining) < r.deliveries.indexOf(r.ofType('host.drained')[0]));
    const planned = r.ofType('turnserver.exited').find((d) => d.event.data.planned === true);
    assert.ok(planned, 'the drain-restart is a planned exit');

    // A crash with an allocation open (uclient's probe allocation outlives it).
    const bob = (await m.get('/turncredential?user=bob', { headers: auth })).body as {
      username: string;
      password: string;
    };
    const uclient = spawnUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      user: bob.username,
      password: bob.password,
      messages: 5,
      length: 100,
    });
    await uclient.exited;
    await waitUntil('an open allocation', async () => (await m.health()).body.stats.openAllocations >= 1, 10_000);
    const pid = (await m.health()).body.turnserver.pid as number;
    process.kill(pid, 'SIGKILL');
    await r.waitFor(
      'turnserver.exited (the crash) then turnserver.ready',
      () => {
        const crash = r.ofType('turnserver.exited').find((d) => d.event.data.pid === pid);
        return (
          !!crash && r.ofType('turnserver.ready').some((d) => r.deliveries.indexOf(d) > r.deliveries.indexOf(crash))
        );
      },
      20_000,
    );
    const crash = r.ofType('turnserver.exited').find((d) => d.event.data.pid === pid)!;
    assert.equal(crash.event.data.planned, false);
    assert.equal(crash.event.data.signal, 'SIGKILL');
    assert.ok(crash.event.data.openAllocationsClosed >= 1);
    await r.waitFor('the allocations it left closed as child-exit', () =>
      r.ofType('allocation.ended').some((d) => d.event.data.endReason === 'child-exit'),
    );
    assert.equal(r.ofType('allocation.started').length, 0, 'only the subscribed types');
    assert.equal((await m.stop()).code, 0);

    const base64 = r.secret.slice('whsec_'.length);
    for (const line of m.output().split('\n'))
      assert.ok(!line.includes(base64) && !line.includes(r.secret), `a log line holds the secret: ${line}`);
  },
  { timeout: 90_000 },
);

harnessTest('userdb mode: a credential revoke produces credential.revoked', async (h) => {
  const r = await WebhookReceiver.start(h);
  const m = await startMonitor(h, {
    http: statsConfig.http,
    webhooks: { endpoints: [{ url: r.url, secret: r.secret, events: ['credential.revoked'] }] },
  });
  const before = (await m.get('/turncredential', { headers: auth })).body.username as string;
  const res = await m.get('/turncredential/revoke', { method: 'POST', headers: auth });
  assert.equal(res.status, 200, res.text);
  await r.waitFor('credential.revoked', () => r.ofType('credential.revoked').length === 1);
  assert.deepEqual(r.ofType('credential.revoked')[0].event.data, { revokedUsers: [before] });
  assert.equal((await m.stop()).code, 0);
});

harnessTest('bad webhook config: exit 2 naming the key, the secret never echoed', async (h) => {
  const secret = newSecret();
  const file = path.join(h.dir, 'bad.json');
  const start = async (webhooks: object) => {
    writeFileSync(file, JSON.stringify({ ...(await testConfig(h)), webhooks }));
    return h.run('monitor', process.execPath, [monitorBin, 'start', '--config', file]);
  };
  const cases: [object, RegExp][] = [
    [
      { endpoints: [{ url: 'ftp://127.0.0.1/x', secret }] },
      /config key "webhooks\.endpoints\.0\.url": must be an http/,
    ],
    [
      { endpoints: [{ url: 'http://127.0.0.1/x', secret: 'not-a-whsec-secret-hunter2' }] },
      /config key "webhooks\.endpoints\.0\.secret": must be a Standard Webhooks secret/,
    ],
    [
      { endpoints: [{ url: 'http://127.0.0.1/x', secret, events: ['allocation.begun'] }] },
      /webhooks\.endpoints\.0\.events\.0/,
    ],
  ];
  for (const [webhooks, re] of cases) {
    const out = await start(webhooks);
    assert.equal(out.code, 2, out.output);
    assert.match(out.output, re);
    assert.equal(out.output.includes('hunter2'), false);
  }
  // A secret file that does not hold a whsec_ secret: found at start, exit 2, its content never shown.
  const secretFile = path.join(h.dir, 'secret');
  writeFileSync(secretFile, 'hunter2-plain-password');
  const out = await start({ endpoints: [{ url: 'http://127.0.0.1/x', secretFile }] });
  assert.equal(out.code, 2, out.output);
  assert.match(
    out.output,
    /config key "webhooks\.endpoints\.0\.secretFile": the file .* must hold a Standard Webhooks secret/,
  );
  assert.equal(out.output.includes('hunter2'), false);
});

harnessTest(
  'TLS: certificate.expiring while daysLeft < warnDays (the same id after a restart the same day), certificate.reloaded on a renewal',
  async (h) => {
    const r = await WebhookReceiver.start(h);
    const soon = makePair(path.join(h.dir, 'archive'), 'soon', { days: 5 });
    const live = linkPair(path.join(h.dir, 'live'), soon);
    const m = await startMonitor(h, {
      turnserver: { tls: { ...live, port: await freePort(), serverName: 'turn.test' } },
      webhooks: { endpoints: [{ url: r.url, secret: r.secret, events: ['certificate.*'] }] },
    });
    await r.waitFor('certificate.expiring', () => r.ofType('certificate.expiring').length === 1);
    const [expiring] = r.ofType('certificate.expiring');
    assert.equal(expiring.event.data.fingerprint, soon.fingerprint);
    assert.ok(expiring.event.data.daysLeft < 14 && expiring.event.data.warnDays === 14);
    assert.equal((await m.stop()).code, 0);

    const m2 = await startMonitor(h, {}, { rawConfig: m.config, configFile: m.configFile });
    await r.waitFor('said again after the restart', () => r.ofType('certificate.expiring').length === 2);
    assert.equal(r.ofType('certificate.expiring')[1].id, expiring.id, 'the same webhook-id: one event a day');
    const renewed = makePair(path.join(h.dir, 'archive'), 'renewed', { days: 90 });
    linkPair(path.join(h.dir, 'live'), renewed);
    await r.waitFor('certificate.reloaded', () => r.ofType('certificate.reloaded').length === 1, 15_000);
    assert.equal(r.ofType('certificate.reloaded')[0].event.data.fingerprint, renewed.fingerprint);
    assert.equal((await m2.stop()).code, 0);
    assert.equal(r.ofType('certificate.expiring').length, 2);
  },
  { timeout: 60_000 },
);
