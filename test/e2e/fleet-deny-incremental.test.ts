import assert from 'node:assert/strict';
import zookeeper from 'node-zookeeper-client';
import { harnessTest } from '../harness/harness.js';
import { createNode, getNode, removeNode, setNode, zkClose, zkConnect } from '../harness/discovery.js';
import { startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { startZookeeper } from '../harness/services.js';
import { waitUntil } from '../../src/process/wait.js';

const KEY = 'fleet-deny-incr-api-key-0123456789';
const auth = { headers: { authorization: `Bearer ${KEY}` } };
const ROOT = '/turn/denied';
const SEEDED = 300;

const entry = (until: number) => ({
  until: new Date(until).toISOString(),
  reason: 'revoked',
  revokedAt: new Date().toISOString(),
  by: 'seed',
});
const status = async (m: MonitorProcess, clientId: string) =>
  (await m.get(`/turncredential?user=${clientId}`, auth)).status;
/** turn_monitor_denied_reads_total: the getData calls the monitor made on deny nodes. */
const reads = async (m: MonitorProcess) => {
  const line = (await m.get('/metrics', auth)).text
    .split('\n')
    .find((l) => l.startsWith('turn_monitor_denied_reads_total '));
  return Number(line?.split(' ')[1]);
};

harnessTest(
  'fleet deny list: a monitor reads a list of hundreds once; then an added node, a changed node and a removed one each cost one read at most, and the 10 s pass removes an ended entry without reading',
  async (h) => {
    const zk = await startZookeeper(h);
    const c = await zkConnect(zk.connect);
    h.onCleanup(() => zkClose(c));
    const hour = Date.now() + 3600_000;
    const ids = Array.from({ length: SEEDED }, (_, i) => `c-${String(i).padStart(4, '0')}`);
    await createNode(c, `${ROOT}/${ids[0]}`, entry(hour), zookeeper.CreateMode.PERSISTENT);
    await Promise.all(
      ids.slice(1).map((id) => createNode(c, `${ROOT}/${id}`, entry(hour), zookeeper.CreateMode.PERSISTENT)),
    );

    const m = await startMonitor(h, {
      http: { apiKeys: [KEY] },
      credentials: { mode: 'secret', validitySec: 600 },
      zookeeper: { connect: zk.connect, deniedPath: ROOT, sessionTimeoutMs: 4000 },
    });
    await waitUntil(
      `${SEEDED} entries read`,
      async () => (await m.health()).body.fleetDenyList.entries === SEEDED,
      15_000,
    );
    const first = await reads(m);
    assert.equal(first, SEEDED, 'every node read once at the first session');
    assert.equal(await status(m, 'c-0007'), 403);

    // Added: one node read.
    await createNode(c, `${ROOT}/newbie`, entry(hour), zookeeper.CreateMode.PERSISTENT);
    await waitUntil('newbie refused', async () => (await status(m, 'newbie')) === 403, 5000, 20);

    // Changed (a later until): that node read again, applied as a new entry.
    const from = m.logs.length;
    await setNode(c, `${ROOT}/c-0001`, entry(hour + 3600_000));
    const applied = await m.waitForLog(
      (e) => e.event === 'fleet-deny-applied' && (e.added as string[]).includes('c-0001'),
      { from, timeoutMs: 5000 },
    );
    assert.deepEqual(applied.added, ['c-0001']);

    // Removed: lifted here without reading anything.
    await removeNode(c, `${ROOT}/c-0002`);
    await waitUntil('c-0002 served again', async () => (await status(m, 'c-0002')) === 200, 5000, 20);
    assert.equal((await m.health()).body.fleetDenyList.entries, SEEDED);

    const spent = (await reads(m)) - first;
    // The added node and the changed one; the removal reads nothing.
    assert.equal(spent, 2, `the three changes cost ${spent} node reads`);

    // The 10 s pass reads nothing: an entry that ends is found in the copy in memory and removed.
    await createNode(c, `${ROOT}/brief`, entry(Date.now() + 4000), zookeeper.CreateMode.PERSISTENT);
    await waitUntil('brief refused', async () => (await status(m, 'brief')) === 403, 3000, 20);
    await waitUntil('the pass removed brief', async () => (await getNode(c, `${ROOT}/brief`)) === null, 20_000, 100);
    await waitUntil('brief gone here', async () => (await m.health()).body.fleetDenyList.entries === SEEDED, 5000);
    assert.equal((await reads(m)) - first, 3, 'brief read once when it came, not by the pass');
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);
