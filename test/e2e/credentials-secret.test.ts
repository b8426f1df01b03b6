import assert from 'node:assert/strict';
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { userdbContents } from '../harness/credentials.js';
import { startMonitor } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';
import { waitUntil } from '../../src/process/wait.js';

harnessTest(
  'secret mode: per-client REST credentials allocate, survive a secret rotation, expire; bad ids are 400',
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, { credentials: { mode: 'secret', rotateIntervalSec: 2, validitySec: 4 } });
    const works = async (c: { username: string; password: string }) => {
      const r = await runUclient(h, {
        turnPort: m.turnPort,
        peerPort: peer.port,
        user: c.username,
        password: c.password,
        messages: 5,
        timeoutMs: 20_000,
      });
      return r.code === 0 && r.lostPackets === 0;
    };
    const conf = (await import('node:fs')).readFileSync(path.join(m.dataDir, 'turnserver.conf'), 'utf8');
    assert.match(conf, /^use-auth-secret$/m);

    const alice = (await m.get('/turncredential?user=alice')).body;
    const [expiry, id] = alice.username.split(':');
    assert.equal(id, 'alice');
    assert.ok(Math.abs(Number(expiry) - (Date.now() / 1000 + 4)) < 2);
    assert.equal(alice.expired_time, Number(expiry) * 1000);
    assert.ok(await works(alice), 'a REST credential allocates and relays');
    // coturn's statsdb events of that allocation carry the REST username; usage is accounted under the client id.
    await waitUntil('alice accounted', async () => (await m.get('/usage?user=alice')).body.rows.length > 0, 10_000);
    const rows = (await m.get('/usage?user=alice')).body.rows;
    assert.ok(
      rows.every(
        (r: { username: string; clientId: string }) => r.username === alice.username && r.clientId === 'alice',
      ),
    );
    assert.equal(await works({ username: alice.username, password: 'bm90LXRoZS1yaWdodC1vbmU=' }), false);

    for (const bad of ['a%25sb', 'a%2Fb', 'a:b', 'x'.repeat(65), '', 'a%20b']) {
      const r = await m.get(`/turncredential?user=${bad}`);
      assert.equal(r.status, 400, `user=${bad}`);
    }

    // A secret rotation keeps credentials issued with the previous secret working.
    const from = m.logs.length;
    await m.waitForLog((e) => e.event === 'rotated', { from, timeoutMs: 10_000 });
    if (Date.now() < alice.expired_time - 1000)
      assert.ok(await works(alice), 'issued before the rotation, still valid');
    const bob = (await m.get('/turncredential?user=bob')).body;
    assert.ok(await works(bob));
    assert.ok(
      userdbContents(path.join(m.dataDir, 'turndb')).secrets.length <= 3,
      'old secrets are deleted once unused',
    );

    // Expiry is in the username: after it, coturn refuses.
    await new Promise((r) => setTimeout(r, Math.max(0, alice.expired_time - Date.now() + 1200)));
    assert.equal(await works(alice), false, 'an expired REST credential is refused');
    assert.equal((await m.stop()).code, 0);
    for (const c of [alice, bob]) assert.equal(m.output().includes(c.password), false);
  },
  { timeout: 90_000 },
);

harnessTest(
  'turnadmin failing: the monitor keeps serving the previous credential, /health degraded, recovers',
  async (h) => {
    const marker = path.join(h.dir, 'broken');
    const wrapper = path.join(h.dir, 'turnadmin-wrapper');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ -e ${marker} ]; then echo "ERROR: database is locked" >&2; exit 1; fi\nexec turnadmin "$@"\n`,
    );
    chmodSync(wrapper, 0o755);
    const m = await startMonitor(h, { credentials: { turnadmin: wrapper } });
    const before = (await m.get('/turncredential')).body;
    writeFileSync(marker, '');
    const rotate = await m.get('/turncredential/rotate', { method: 'POST' });
    assert.equal(rotate.status, 502);
    const served = (await m.get('/turncredential')).body;
    assert.equal(served.username, before.username, 'the previous credential is still served');

    // A failure in the scheduled path marks /health degraded and retries with backoff.
    const from = m.logs.length;
    await m.get('/turncredential/rotate', { method: 'POST' });
    const health = await m.health();
    assert.equal(health.status, 200, 'turnserver still serves');
    assert.equal(health.body.credentials.status, 'degraded');
    assert.match(health.body.credentials.lastError, /database is locked/);
    assert.equal(
      m.logs.slice(from).some((e) => e.event === 'rotate-failed'),
      true,
    );
    assert.equal(m.output().includes(before.password), false);
    rmSync(marker);
    const ok = await m.get('/turncredential/rotate', { method: 'POST' });
    assert.equal(ok.status, 200);
    assert.notEqual((await m.get('/turncredential')).body.username, before.username);
    assert.equal((await m.stop()).code, 0);
  },
);

harnessTest('turnadmin missing at start: monitor runs, /health degraded, /turncredential 503', async (h) => {
  const m = await startMonitor(h, { credentials: { turnadmin: '/nonexistent/turnadmin' } });
  const health = await m.health();
  assert.equal(health.status, 200);
  assert.equal(health.body.status, 'degraded');
  assert.equal(health.body.credentials.status, 'degraded');
  assert.match(health.body.credentials.lastError, /binary not found/);
  assert.equal((await m.get('/turncredential')).status, 503);
  const retry = await m.waitForLog((e) => e.event === 'turnadmin-failed' && (e.retryMs as number) > 1000);
  assert.ok(retry, 'retries back off');
  assert.equal((await m.stop()).code, 0);
});

harnessTest('the credential route is rate limited per IP', async (h) => {
  const m = await startMonitor(h, { http: { rateLimitPerMinute: 3 } });
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push((await m.get('/turncredential')).status);
  assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  assert.equal((await m.health()).status, 200, 'other routes are not limited');
  assert.equal((await m.stop()).code, 0);
});
