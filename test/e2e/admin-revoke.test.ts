import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { harnessTest, type Harness } from '../harness/harness.js';
import { userdbContents } from '../harness/credentials.js';
import { coturnSessions } from '../harness/coturn-cli.js';
import { monitorBin, startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { runUclient, spawnUclient, startPeer } from '../harness/services.js';
import { waitUntil } from '../../src/process/wait.js';

const KEY = 'revoke-api-key-0123456789';
const auth = { headers: { authorization: `Bearer ${KEY}` } };
const post = { ...auth, method: 'POST' };

type Cred = { username: string; password: string };
const clientSessions = async (m: MonitorProcess, clientId: string) =>
  [...(await coturnSessions(m)).ids].filter(([, user]) => user.endsWith(`:${clientId}`)).map(([id]) => id);

/** Allocate with a credential; uclient's probe allocation stays alive after it exits. */
const allocate = (h: Harness, m: MonitorProcess, peerPort: number, c: Cred, clients = 1) =>
  runUclient(h, {
    turnPort: m.turnPort,
    peerPort,
    user: c.username,
    password: c.password,
    clients,
    messages: 1,
    length: 50,
    timeoutMs: 20_000,
  });

/** The model has seen these allocations start (so their records can take the end reason). */
const modelHas = (m: MonitorProcess, ids: string[]) =>
  waitUntil(
    'the model saw the allocations',
    async () => {
      const open = ((await m.get('/allocations', auth)).body as { allocationId: string }[]).map((a) => a.allocationId);
      return ids.every((id) => open.includes(id));
    },
    10_000,
  );

harnessTest(
  "revoke, secret mode: all of a client's allocations gone within 1 s, new ones cancelled at once, 403, lift restores, survives a restart",
  async (h) => {
    const peer = await startPeer(h);
    // A secret rotated hourly with 10-minute credentials: refused before this issue, a normal setup.
    const m = await startMonitor(h, {
      http: { apiKeys: [KEY] },
      credentials: { mode: 'secret', rotateIntervalSec: 3600, validitySec: 600 },
    });
    const cred = async (id: string) => (await m.get(`/turncredential?user=${id}`, auth)).body as Cred;
    const alice = await cred('alice');
    assert.equal((await allocate(h, m, peer.port, alice, 5)).code, 0);
    assert.equal((await allocate(h, m, peer.port, await cred('bob'))).code, 0);
    // uclient's freed allocations take a moment to go; then alice holds her 5 probes, bob 1.
    let held: string[] = [];
    await waitUntil(
      'alice holds 5 live allocations, bob 1',
      async () =>
        (held = await clientSessions(m, 'alice')).length === 5 && (await clientSessions(m, 'bob')).length === 1,
      5000,
      50,
    );
    await modelHas(m, held);

    const t0 = Date.now();
    const r = await m.get('/clients/alice/revoke', post);
    assert.equal(r.status, 200, r.text);
    await waitUntil(
      'alice has no allocation left',
      async () => (await clientSessions(m, 'alice')).length === 0,
      1000,
      10,
    );
    const revokeMs = Date.now() - t0;
    assert.equal(r.body.cancelled, 5);
    assert.equal((await clientSessions(m, 'bob')).length, 1, 'other clients keep theirs');
    assert.equal((await m.get('/turncredential?user=alice', auth)).status, 403);
    assert.equal((await m.get('/clients/a%25b/revoke', post)).status, 400, 'malformed client id');

    // A credential alice fetched before the revoke is still valid for coturn: its allocation is cancelled as soon as the monitor sees it.
    // (uclient itself keeps retrying on its cancelled allocation: it is stopped, not awaited.)
    const retry = spawnUclient(
      h,
      {
        turnPort: m.turnPort,
        peerPort: peer.port,
        user: alice.username,
        password: alice.password,
        messages: 1,
        length: 50,
      },
      'uclient-revoked',
    );
    type Row = { allocationId: string; endReason: string | null; startedAt: string; endedAt: string | null };
    let late: Row[] = [];
    await waitUntil(
      'the new allocations of alice are cancelled',
      async () => {
        const rows = (await m.get('/usage?user=alice', auth)).body.rows as Row[];
        late = rows.filter((x) => !held.includes(x.allocationId) && x.endReason === 'revoked');
        return late.length >= 1 && (await clientSessions(m, 'alice')).length === 0;
      },
      10_000,
    );
    retry.child.kill('SIGKILL');
    for (const x of late)
      assert.ok(Date.parse(x.endedAt!) - Date.parse(x.startedAt) < 1000, 'cancelled the moment the monitor saw it');
    const rows = (await m.get('/usage?user=alice', auth)).body.rows as Row[];
    assert.ok(
      held.every((id) => rows.some((x) => x.allocationId === id && x.endReason === 'revoked')),
      'the revoked allocations closed as revoked',
    );

    // Lifting the revoke restores both the credential and allocations.
    assert.equal((await m.get('/clients/alice/revoke', { ...auth, method: 'DELETE' })).status, 200);
    const again = await cred('alice');
    assert.ok(again.username);
    assert.equal((await allocate(h, m, peer.port, again)).code, 0);
    let kept: string[] = [];
    await waitUntil(
      'alice holds her new probe allocation',
      async () => (kept = await clientSessions(m, 'alice')).length === 1,
      5000,
      50,
    );
    await modelHas(m, kept);
    assert.deepEqual(await clientSessions(m, 'alice'), kept, 'not cancelled once the monitor saw it');

    // The deny list survives a monitor restart (credential.json, 0600).
    const cli = await h.run('cli', process.execPath, [monitorBin, 'revoke', 'alice', '--config', m.configFile]);
    assert.equal(cli.code, 0, cli.output);
    assert.match(cli.output, /alice: revoked until .*, 1 allocation\(s\) cancelled/);
    const metrics = (await m.get('/metrics')).text;
    assert.match(metrics, /turn_monitor_revoked_clients 1/);
    assert.match(metrics, /turn_monitor_disconnects_total\{reason="revoked"\} [1-9]/);
    assert.equal((await m.stop()).code, 0);
    const stateFile = path.join(m.dataDir, 'credential.json');
    assert.equal(statSync(stateFile).mode & 0o777, 0o600);
    assert.match(readFileSync(stateFile, 'utf8'), /"clientId": "alice"/);
    const m2 = await startMonitor(h, {}, { rawConfig: m.config, configFile: m.configFile });
    assert.equal((await m2.get('/turncredential?user=alice', auth)).status, 403, 'still revoked after a restart');
    assert.equal((await m2.get('/turncredential?user=bob', auth)).status, 200);
    assert.equal((await m2.stop()).code, 0);
    assert.equal(m.output().includes(alice.password), false);
    console.log(`revoke (5 allocations) → gone from coturn in ${revokeMs} ms`);
  },
  { timeout: 90_000 },
);

harnessTest(
  "revoke, userdb mode: the leaked credential's live relay ends within 1 s, it no longer authenticates, the new one does",
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, { http: { apiKeys: [KEY] } });
    const leaked = (await m.get('/turncredential', auth)).body as Cred;
    const long = spawnUclient(
      h,
      {
        turnPort: m.turnPort,
        peerPort: peer.port,
        user: leaked.username,
        password: leaked.password,
        messages: 3000,
        length: 100,
      },
      'uclient-long',
    );
    h.onCleanup(async () => void long.child.kill('SIGKILL'));
    let relaying: string[] = [];
    await waitUntil(
      'the leaked credential relays',
      async () => {
        const live = (await m.get('/sessions', auth)).body as {
          allocationId: string;
          username: string;
          peers: string[];
        }[];
        relaying = live.filter((s) => s.username === leaked.username && s.peers.length > 0).map((s) => s.allocationId);
        return relaying.length > 0;
      },
      15_000,
    );
    await modelHas(m, relaying);

    const t0 = Date.now();
    const r = await m.get('/turncredential/revoke', post);
    assert.equal(r.status, 200, r.text);
    await waitUntil(
      'no allocation of the leaked user',
      async () => ![...(await coturnSessions(m)).ids.values()].includes(leaked.username),
      1000,
      10,
    );
    const revokeMs = Date.now() - t0;
    assert.equal(long.child.exitCode, null, 'it was still relaying when cut');
    assert.ok(
      !userdbContents(path.join(m.dataDir, 'turndb')).users.includes(leaked.username),
      'deleted from the userdb',
    );
    await waitUntil(
      'its record closed as revoked',
      async () =>
        ((await m.get('/usage', auth)).body.rows as { allocationId: string; endReason: string }[]).some(
          (x) => relaying.includes(x.allocationId) && x.endReason === 'revoked',
        ),
      10_000,
    );

    assert.notEqual((await allocate(h, m, peer.port, leaked)).code, 0, 'the leaked credential no longer authenticates');
    const fresh = (await m.get('/turncredential', auth)).body as Cred;
    assert.notEqual(fresh.username, leaked.username);
    assert.equal((await allocate(h, m, peer.port, fresh)).code, 0, 'the new credential works');
    assert.equal((await m.get('/clients/alice/revoke', post)).status, 409, 'client revoke is for secret mode');
    assert.equal((await m.stop()).code, 0);
    console.log(`credential revoke (live relay) → gone from coturn in ${revokeMs} ms`);
  },
  { timeout: 60_000 },
);

harnessTest(
  "maxAllocationsPerClient: coturn's user-quota counts per client id; the allocation past it gets 486",
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, {
      http: { apiKeys: [KEY] },
      credentials: { mode: 'secret', maxAllocationsPerClient: 2 },
    });
    assert.match(readFileSync(path.join(m.dataDir, 'turnserver.conf'), 'utf8'), /^user-quota=2$/m);
    const cred = async (id: string) => (await m.get(`/turncredential?user=${id}`, auth)).body as Cred;
    const first = await cred('carol');
    // uclient holds 2 allocations at once (its own and a probe that stays): exactly the quota.
    assert.equal((await allocate(h, m, peer.port, first)).code, 0);
    // Another REST username of the same client (a later expiry): coturn strips the timestamp, so it counts against the same quota.
    let second = first;
    await waitUntil(
      'a credential with another expiry',
      async () => (second = await cred('carol')).username !== first.username,
      3000,
      100,
    );
    const over = await allocate(h, m, peer.port, second);
    assert.notEqual(over.code, 0);
    assert.match(over.output, /error 486 \(Allocation Quota Reached\)/);
    assert.equal((await allocate(h, m, peer.port, await cred('dave'))).code, 0, 'other clients have their own quota');
    assert.equal((await m.stop()).code, 0);
  },
);

harnessTest(
  'a revoke while turnserver restarts: answered within the deadline, the deny list holds and applies once it is back',
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, { http: { apiKeys: [KEY] }, credentials: { mode: 'secret', validitySec: 600 } });
    const erin = (await m.get('/turncredential?user=erin', auth)).body as Cred;
    await waitUntil('admin connected', async () => (await m.health()).body.turnserver.admin === 'connected', 5000);
    const pid = (await m.health()).body.turnserver.pid as number;
    const from = m.logs.length;
    process.kill(pid, 'SIGKILL');
    await m.waitForEvent('exit', { from });
    assert.equal((await m.health()).body.turnserver.admin, 'down');
    const t0 = Date.now();
    const r = await fetch(`${m.httpUrl}/clients/erin/revoke`, { method: 'POST', headers: auth.headers });
    const body = (await r.json()) as { code: string; revoked?: boolean; pending?: boolean };
    assert.ok(Date.now() - t0 < 4500, 'answered within the command deadline');
    // Either turnserver came back within the deadline (200) or the channel could not answer (503, pending).
    if (r.status === 503) {
      assert.ok(Number(r.headers.get('retry-after')) > 0);
      assert.equal(body.pending, true);
    } else assert.equal(r.status, 200);
    assert.equal((await m.get('/turncredential?user=erin', auth)).status, 403, 'the deny list holds meanwhile');
    await m.waitForEvent('ready', { from });
    await waitUntil(
      'admin connected again',
      async () => (await m.health()).body.turnserver.admin === 'connected',
      5000,
    );
    // erin's credential from before the revoke still authenticates with coturn: the monitor cancels what it makes.
    const retry = spawnUclient(
      h,
      {
        turnPort: m.turnPort,
        peerPort: peer.port,
        user: erin.username,
        password: erin.password,
        messages: 1,
        length: 50,
      },
      'uclient-revoked',
    );
    await waitUntil(
      "erin's allocation cancelled",
      async () =>
        ((await m.get('/usage?user=erin', auth)).body.rows as { endReason: string }[]).some(
          (x) => x.endReason === 'revoked',
        ) && (await clientSessions(m, 'erin')).length === 0,
      10_000,
    );
    retry.child.kill('SIGKILL');
    assert.equal((await m.stop()).code, 0);
  },
);
