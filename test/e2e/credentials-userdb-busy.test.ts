import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { harnessTest } from '../harness/harness.js';
import { userdbContents } from '../harness/credentials.js';
import { startMonitor } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';

// turnadmin exits 0 when SQLite refuses its write because a reader (turnserver authenticating a
// client) holds the userdb at that moment; here a test connection holds a read transaction.
harnessTest(
  'userdb busy: a turnadmin write SQLite refused is a failure, retried until the userdb shows it',
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, { credentials: { rotateIntervalSec: 2, validitySec: 4 } });
    const db = path.join(m.dataDir, 'turndb');
    const first = (await m.get('/turncredential')).body;

    const reader = new Database(db);
    h.onCleanup(async () => void reader.close());
    reader.exec('BEGIN');
    reader.prepare('SELECT count(*) FROM turnusers_lt').get(); // holds a shared lock until COMMIT
    const from = m.logs.length;
    const failed = await m.waitForLog((e) => e.event === 'turnadmin-failed', { from, timeoutMs: 10_000 });
    assert.match(String(failed.err), /does not show the change/);
    assert.equal(
      m.logs.slice(from).some((e) => e.event === 'rotated'),
      false,
      'no rotation is reported while its user is not in the userdb',
    );
    const health = (await m.health()).body.credentials;
    assert.equal(health.status, 'degraded');
    assert.match(health.lastError, /does not show the change/);
    if (Date.now() < first.expired_time - 500)
      assert.equal((await m.get('/turncredential')).body.username, first.username, 'the previous one is served');

    reader.exec('COMMIT');
    const released = m.logs.length;
    await m.waitForLog((e) => e.event === 'rotated', { from: released, timeoutMs: 70_000 });
    await m.waitForLog((e) => e.event === 'expired' && e.id === first.username, { timeoutMs: 10_000 });
    const second = (await m.get('/turncredential')).body;
    assert.notEqual(second.username, first.username);
    const users = userdbContents(db).users;
    assert.ok(users.includes(second.username), 'the retried rotation is in the userdb');
    assert.equal(users.includes(first.username), false, 'the retried expiry removed the old user');
    const r = await runUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      user: second.username,
      password: second.password,
      messages: 5,
    });
    assert.equal(r.code, 0);
    assert.equal(r.lostPackets, 0);
    assert.equal((await m.health()).body.credentials.status, 'ok');
    assert.equal((await m.stop()).code, 0);
    assert.equal(m.output().includes(second.password), false, 'no secret in the log');
  },
  { timeout: 120_000 },
);
