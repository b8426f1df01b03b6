import assert from 'node:assert/strict';
import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { leftoverTurnadminLogs, userdbContents } from '../harness/credentials.js';
import { startMonitor } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';

const KEY = 'test-api-key-0123456789';
const auth = { headers: { authorization: `Bearer ${KEY}` } };

harnessTest(
  'userdb mode: credentials allocate, rotate, keep working until expiry, then fail; userdb holds only valid users',
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, {
      http: { apiKeys: [KEY] },
      credentials: { rotateIntervalSec: 3, validitySec: 6 },
    });
    const db = path.join(m.dataDir, 'turndb');
    const relay = (user: string, password: string) =>
      runUclient(h, { turnPort: m.turnPort, peerPort: peer.port, user, password, messages: 5, timeoutMs: 20_000 });
    const works = async (user: string, password: string) => {
      const r = await relay(user, password);
      return r.code === 0 && r.lostPackets === 0;
    };

    // API keys: none or a wrong one → 401; Bearer or ?key= → 200.
    assert.equal((await m.get('/turncredential')).status, 401);
    assert.equal(
      (await m.get('/turncredential', { headers: { authorization: 'Bearer wrong-key-xxxxxxxxxx' } })).status,
      401,
    );
    assert.equal((await m.get(`/turncredential?key=${KEY}`)).status, 200);
    const first = (await m.get('/turncredential', auth)).body;
    assert.equal(first.type, 'result');
    assert.equal(first.code, 'ok');
    assert.equal(first.userid, first.username);
    assert.ok(first.password.length >= 22, '≥ 128 bits of password');
    assert.ok(first.expired_time > Date.now() && first.expired_time <= Date.now() + 6000);
    assert.ok(first.ttl > 0 && first.ttl <= 6);
    assert.deepEqual(first.uris, [
      `turn:127.0.0.1:${m.turnPort}?transport=udp`,
      `turn:127.0.0.1:${m.turnPort}?transport=tcp`,
      `stun:127.0.0.1:${m.turnPort}`,
    ]);
    assert.deepEqual(first.iceServers, [{ urls: first.uris, username: first.username, credential: first.password }]);

    assert.ok(await works(first.username, first.password), 'the served credential allocates and relays');
    assert.equal(await works(first.username, 'wrong-password'), false, 'a wrong password is refused');

    // Rotation: a new credential; the previous one still works until it expires.
    const from = m.logs.length;
    await m.waitForLog((e) => e.event === 'rotated', { from, timeoutMs: 10_000 });
    const second = (await m.get('/turncredential', auth)).body;
    // Read the userdb right after the rotation: on a slow machine the relays below can outlast
    // the new user's own validity, and an expired user must leave the userdb.
    const users = userdbContents(db).users;
    const readAt = Date.now();
    assert.notEqual(second.username, first.username);
    assert.ok(users.includes(second.username));
    if (readAt < first.expired_time - 500)
      assert.ok(users.includes(first.username), 'the previous user stays until expiry');
    assert.ok(await works(second.username, second.password));
    if (Date.now() < first.expired_time - 1500)
      assert.ok(await works(first.username, first.password), 'the previous credential works until expiry');

    // Expiry: deleted from the userdb and refused.
    await m.waitForLog((e) => e.event === 'expired' && e.id === first.username, { timeoutMs: 10_000 });
    assert.equal(userdbContents(db).users.includes(first.username), false, 'the userdb never keeps an expired user');
    assert.equal(await works(first.username, first.password), false, 'an expired credential is refused');

    assert.equal(statSync(path.join(m.dataDir, 'credential.json')).mode & 0o777, 0o600);
    const health = await m.health();
    assert.equal(health.body.credentials.status, 'ok');
    assert.equal((await m.stop()).code, 0);
    const out = m.output();
    for (const secret of [first.password, second.password, KEY])
      assert.equal(out.includes(secret), false, 'no secret in the log');
    const calls = m.logs.filter((e) => e.event === 'turnadmin-call').map((e) => Number(e.pid));
    assert.ok(calls.length >= 3, 'turnadmin calls are logged with their pid');
    assert.deepEqual(leftoverTurnadminLogs(calls), [], 'every turnadmin log file was removed');
  },
  { timeout: 90_000 },
);

harnessTest('a restarted monitor serves the same credential; a corrupt state file gives a fresh one', async (h) => {
  const m1 = await startMonitor(h);
  const c1 = (await m1.get('/turncredential')).body;
  assert.equal((await m1.stop()).code, 0);
  const m2 = await startMonitor(h, {}, { rawConfig: m1.config });
  const c2 = (await m2.get('/turncredential')).body;
  assert.equal(c2.username, c1.username);
  assert.equal(c2.password, c1.password);
  assert.equal((await m2.stop()).code, 0);

  writeFileSync(path.join(m1.dataDir, 'credential.json'), '{"version": 1, "entr');
  const m3 = await startMonitor(h, {}, { rawConfig: m1.config });
  await m3.waitForLog((e) => e.event === 'state-corrupt');
  const c3 = (await m3.get('/turncredential')).body;
  assert.notEqual(c3.username, c1.username);
  const peer = await startPeer(h);
  const r = await runUclient(h, {
    turnPort: m3.turnPort,
    peerPort: peer.port,
    user: c3.username,
    password: c3.password,
    messages: 5,
  });
  assert.equal(r.code, 0);
  assert.equal(r.lostPackets, 0);
  assert.equal((await m3.stop()).code, 0);
});

harnessTest('POST /turncredential/rotate and the credential CLI', async (h) => {
  const m = await startMonitor(h, { http: { apiKeys: [KEY] } });
  const before = (await m.get('/turncredential', auth)).body;
  assert.equal((await m.get('/turncredential/rotate', { method: 'POST' })).status, 401);
  const cli = await h.run('cli', process.execPath, [
    path.join(process.cwd(), 'bin/turn-monitor'),
    'credential',
    '--config',
    m.configFile,
    '--rotate',
    '--json',
  ]);
  assert.equal(cli.code, 0, cli.output);
  const shown = JSON.parse(cli.output.trim());
  assert.equal(shown.rotated, true);
  assert.notEqual(shown.username, before.username);
  assert.equal(shown.password, undefined, 'no password without --show-secret');
  assert.equal(cli.output.includes(KEY), false);
  const after = (await m.get('/turncredential', auth)).body;
  assert.equal(after.username, shown.username);
  const plain = await h.run('cli', process.execPath, [
    path.join(process.cwd(), 'bin/turn-monitor'),
    'credential',
    '--config',
    m.configFile,
    '--show-secret',
  ]);
  assert.match(plain.output, new RegExp(`password\\s+${after.password.replace(/[-/\\^$*+?.()|[\]{}]/g, '\\$&')}`));
  assert.equal((await m.stop()).code, 0);
});
