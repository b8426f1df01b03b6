import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { createSelector } from '../../src/discovery/selector.js';
import { makePair } from '../harness/certs.js';
import { FakeNic, getNode, zkClose, zkConnect, type ZkClient } from '../harness/discovery.js';
import { harnessTest } from '../harness/harness.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';
import { startZookeeper } from '../harness/services.js';
import { waitUntil } from '../../src/process/wait.js';

const AUTH = 'turnmon:zk-digest-pw-4711';
const ROOT = '/acl-test/turn/servers';
const DENIED = '/acl-test/turn/denied';
const KEY = 'acl-api-key-0123456789';

const codeOf = (err: unknown) => (err as { getCode?: () => number } | null)?.getCode?.() ?? null;
/** The ZooKeeper answer to a call: 0 for success, else its error code. */
const answer = (op: (done: (err: unknown) => void) => void) =>
  new Promise<number>((resolve) => op((err) => resolve(err ? (codeOf(err) ?? -999) : 0)));

harnessTest(
  'ZooKeeper digest auth: host node, deny-list node and the parents the monitor creates get "digest: all, world: read"; strangers read but get NoAuth on setData/remove/create; with the digest they may; the selector lists the host with its https restUrl; fleet reaches it',
  async (h) => {
    const zk = await startZookeeper(h);
    const nic = new FakeNic(h.dir, 'tm0', 0, 0);
    h.onCleanup(() => nic.stop());
    const routeFile = nic.defaultRouteFile();
    const authFile = path.join(h.dir, 'zk-auth');
    writeFileSync(authFile, `${AUTH}\n`, { mode: 0o600 });
    const pair = makePair(path.join(h.dir, 'certs'), 'api', { cn: 'api.test', san: 'DNS:api.test,IP:127.0.0.1' });
    const m = await startMonitor(h, {
      credentials: { mode: 'secret' },
      http: { apiKeys: [KEY], tls: { cert: pair.cert, key: pair.key } },
      zookeeper: { connect: zk.connect, path: ROOT, deniedPath: DENIED, sessionTimeoutMs: 3000, authFile },
      discovery: {
        nodeName: 'host-a',
        interface: null,
        procNetRoute: routeFile,
        sysClassNet: nic.sysClassNet,
        intervalSec: 1,
        drainMs: 0,
      },
    });
    const nodePath = `${ROOT}/host-a`;
    const stranger: ZkClient = await zkConnect(zk.connect);
    h.onCleanup(() => zkClose(stranger));
    await waitUntil('the host node is published', async () => (await getNode(stranger, nodePath)) !== null, 10_000);

    const node = (await getNode(stranger, nodePath))!;
    const port = (m.config.http as { port: number }).port;
    assert.equal(node.json.restAddr, `127.0.0.1:${port}`, 'restAddr stays host:port');
    assert.equal(node.json.restUrl, `https://127.0.0.1:${port}`, 'restUrl carries the scheme');

    // A revoke (the CLI, over HTTPS) writes the fleet deny list: its nodes get the same ACL.
    const revoke = await h.run('revoke', process.execPath, [monitorBin, 'revoke', 'mallory', '--config', m.configFile]);
    assert.equal(revoke.code, 0, revoke.output);
    const deniedNode = `${DENIED}/mallory`;
    await waitUntil(
      'the deny-list node is written',
      async () => (await getNode(stranger, deniedNode)) !== null,
      10_000,
    );

    // Every node on the way that the monitor created carries the ACL.
    for (const p of ['/acl-test', '/acl-test/turn', ROOT, nodePath, DENIED, deniedNode]) {
      const acl = await new Promise<zookeeper.ACL[]>((resolve, reject) =>
        stranger.getACL(p, (err, acls) => (err ? reject(err) : resolve(acls))),
      );
      assert.deepEqual(
        acl.map(
          (a) => `${a.id.scheme}:${a.id.id.split(':')[0]}:${(a as unknown as { permission: number }).permission}`,
        ),
        ['digest:turnmon:31', 'world:anyone:1'],
        p,
      );
    }
    const NO_AUTH = zookeeper.Exception.NO_AUTH;
    const data = Buffer.from(JSON.stringify({ ...node.json, restAddr: '203.0.113.66:80' }));
    assert.equal(await answer((d) => stranger.setData(nodePath, data, -1, d)), NO_AUTH, 'setData');
    assert.equal(await answer((d) => stranger.remove(nodePath, -1, d)), NO_AUTH, 'remove');
    assert.equal(
      await answer((d) => stranger.create(`${ROOT}/evil:3478`, data, zookeeper.CreateMode.EPHEMERAL, d)),
      NO_AUTH,
      'a foreign host node',
    );
    assert.equal((await getNode(stranger, nodePath))!.json.restAddr, `127.0.0.1:${port}`, 'unchanged');
    assert.equal(await answer((d) => stranger.remove(deniedNode, -1, d)), NO_AUTH, 'lifting a revoke');
    assert.equal(await answer((d) => stranger.setData(deniedNode, data, -1, d)), NO_AUTH, 'rewriting a revoke');

    // The selector reads without credentials.
    const selector = createSelector({ connect: zk.connect, path: ROOT, sessionTimeoutMs: 3000 });
    h.onCleanup(() => selector.close());
    await selector.ready(10_000);
    assert.deepEqual(
      selector.list().map((x) => [x.name, x.restUrl]),
      [['host-a', `https://127.0.0.1:${port}`]],
    );
    // fleet follows restUrl over HTTPS (trusting --cacert).
    const fleet = await h.run('fleet', process.execPath, [
      monitorBin,
      'fleet',
      'sessions',
      '--zookeeper',
      zk.connect,
      '--path',
      ROOT,
      '--key',
      KEY,
      '--cacert',
      pair.cert,
      '--json',
    ]);
    assert.equal(fleet.code, 0, fleet.output);
    assert.equal(JSON.parse(fleet.output.trim().split('\n').pop()!)[0].status, 200);

    // With the digest: allowed.
    const owner = zookeeper.createClient(zk.connect, { sessionTimeout: 4000, spinDelay: 200 });
    owner.addAuthInfo('digest', Buffer.from(AUTH));
    await new Promise<void>((resolve) => {
      owner.once('connected', () => resolve());
      owner.connect();
    });
    h.onCleanup(() => zkClose(owner));
    assert.equal(await answer((d) => owner.setData(nodePath, data, -1, d)), 0, 'setData with the digest');
    assert.equal(await answer((d) => owner.remove(nodePath, -1, d)), 0, 'remove with the digest');
    assert.ok(!m.output().includes('zk-digest-pw-4711'), 'the password is never logged');
  },
  { timeout: 50_000 },
);
