import assert from 'node:assert/strict';
import path from 'node:path';
import { harnessTest, type Harness } from '../harness/harness.js';
import { coturnSessions } from '../harness/coturn-cli.js';
import { startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { runUclient, startPeer, startZookeeper } from '../harness/services.js';
import { waitUntil } from '../../src/process/wait.js';

const KEY = 'fleet-deny-api-key-0123456789';
const auth = { headers: { authorization: `Bearer ${KEY}` } };

/** A secret-mode monitor of the fleet (its own data dir and config file, so it can be restarted as itself). */
const host = (h: Harness, name: string, zk: string) =>
  startMonitor(
    h,
    {
      dataDir: path.join(h.dir, `data-${name}`),
      http: { apiKeys: [KEY] },
      credentials: { mode: 'secret', validitySec: 600 },
      zookeeper: { connect: zk, sessionTimeoutMs: 4000 },
    },
    { configFile: path.join(h.dir, `${name}.json`) },
  );
const restart = (h: Harness, m: MonitorProcess) =>
  startMonitor(h, {}, { rawConfig: m.config, configFile: m.configFile });

const status = async (m: MonitorProcess, clientId: string) =>
  (await m.get(`/turncredential?user=${clientId}`, auth)).status;
const denied = (m: MonitorProcess, clientId: string, timeoutMs = 10_000) =>
  waitUntil(`${clientId} refused on ${m.turnPort}`, async () => (await status(m, clientId)) === 403, timeoutMs, 20);
const allowed = (m: MonitorProcess, clientId: string, timeoutMs = 10_000) =>
  waitUntil(`${clientId} served on ${m.turnPort}`, async () => (await status(m, clientId)) === 200, timeoutMs, 20);
const held = async (m: MonitorProcess, clientId: string) =>
  [...(await coturnSessions(m)).ids.values()].filter((u) => u.endsWith(`:${clientId}`)).length;
const call = (m: MonitorProcess, method: string, p: string) => m.get(p, { ...auth, method });

harnessTest(
  'fleet deny list: a revoke on one host cuts the client on another within 1 s, reaches a host stopped at the time, and converges after a ZooKeeper outage',
  async (h) => {
    const zk = await startZookeeper(h);
    const peer = await startPeer(h);
    const [a, b0] = await Promise.all([host(h, 'a', zk.connect), host(h, 'b', zk.connect)]);
    let b = b0;
    for (const m of [a, b])
      await waitUntil(
        'fleet deny list synced',
        async () => (await m.health()).body.fleetDenyList.status === 'ok',
        10_000,
      );

    // alice holds an allocation on B (uclient's probe allocation stays); she is revoked on A.
    const cred = (await b.get('/turncredential?user=alice', auth)).body as { username: string; password: string };
    const r0 = await runUclient(h, {
      turnPort: b.turnPort,
      peerPort: peer.port,
      user: cred.username,
      password: cred.password,
      messages: 1,
      length: 50,
    });
    assert.equal(r0.code, 0, r0.output.slice(-300));
    await waitUntil('alice holds her allocation on B', async () => (await held(b, 'alice')) === 1, 5000);
    const t0 = Date.now();
    const r = await call(a, 'POST', '/clients/alice/revoke');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.fleet, 'written');
    await waitUntil(
      'alice cut and refused on B',
      async () => (await held(b, 'alice')) === 0 && (await status(b, 'alice')) === 403,
      3000,
      20,
    );
    const applyMs = Date.now() - t0;
    assert.ok(applyMs < 1500, `applied on B after ${applyMs} ms`);
    assert.equal((await b.health()).body.fleetDenyList.entries, 1);

    // B is stopped; bob is revoked on A meanwhile; B learns it when it starts.
    assert.equal((await b.stop()).code, 0);
    assert.equal((await call(a, 'POST', '/clients/bob/revoke')).status, 200);
    b = await restart(h, b);
    await denied(b, 'bob');
    assert.equal(await status(b, 'alice'), 403);

    // ZooKeeper down: revokes and lifts still work locally (queued), what B knew holds.
    await zk.stop();
    await waitUntil(
      'A sees ZooKeeper gone',
      async () => (await a.health()).body.fleetDenyList.zookeeper !== 'connected',
      15_000,
    );
    const q = await call(a, 'POST', '/clients/carol/revoke');
    assert.equal(q.status, 200, q.text);
    assert.equal(q.body.fleet, 'queued');
    assert.equal(await status(a, 'carol'), 403);
    assert.equal((await call(a, 'DELETE', '/clients/alice/revoke')).status, 200);
    assert.equal(await status(a, 'alice'), 200);
    assert.equal(await status(b, 'alice'), 403, "B's local copy holds");
    assert.equal(await status(b, 'bob'), 403);
    const health = (await a.health()).body.fleetDenyList;
    assert.equal(health.status, 'degraded');
    assert.equal(health.unsynced, 2);

    // ZooKeeper back (same data): A writes what queued, B converges.
    await startZookeeper(h, zk.port);
    await denied(b, 'carol', 20_000);
    await allowed(b, 'alice');
    assert.equal(await status(b, 'bob'), 403);
    await waitUntil(
      'A has nothing left to write',
      async () => (await a.health()).body.fleetDenyList.unsynced === 0,
      5000,
    );
    for (const m of [a, b]) assert.equal((await m.stop()).code, 0);
  },
  { timeout: 120_000 },
);
