import assert from 'node:assert/strict';
import os from 'node:os';
import { createSelector, type TurnHost } from '../../src/discovery/selector.js';
import { harnessTest } from '../harness/harness.js';
import { monitorBin, repoRoot, startMonitor, testConfig } from '../harness/monitor.js';
import { startZookeeper } from '../harness/services.js';
import { createNode, FakeNic, removeNode, setNode, zkClose, zkConnect } from '../harness/discovery.js';

const fake = (freeTraffic: number, restAddr: string) => ({
  freeTraffic,
  restAddr,
  turnUris: [`turn:${restAddr.split(':')[0]}:3478?transport=udp`],
  rxMbps: 1000 - freeTraffic,
  txMbps: 10,
  capacityMbps: 1000,
  allocations: 3,
  serving: true,
  updatedAt: new Date().toISOString(),
  version: 'test',
});

harnessTest(
  'selector: round-robin above the threshold, list sorted, a host that disappears drops out at once; the CLI prints them',
  async (h, t) => {
    const zk = await startZookeeper(h);
    // One real monitor with an idle fake NIC: it publishes freeTraffic 1000.
    const nic = new FakeNic(h.dir, 'tm0', 0, 0);
    h.onCleanup(() => nic.stop());
    const routeFile = nic.defaultRouteFile();
    const config = await testConfig(h, {
      zookeeper: { connect: zk.connect, sessionTimeoutMs: 3000 },
      // interface null: the one carrying the default route, from a route table the test writes.
      discovery: { interface: null, procNetRoute: routeFile, sysClassNet: nic.sysClassNet, intervalSec: 1, drainMs: 0 },
    });
    const realName = `${os.hostname()}:${(config.turnserver as { listeningPort: number }).listeningPort}`;
    // Three more hosts published directly (data, as other TURN hosts would write it).
    const other = await zkConnect(zk.connect);
    h.onCleanup(() => zkClose(other));
    await createNode(other, '/turn/servers/10.0.0.1:3478', fake(700, '10.0.0.1:8080'));
    await createNode(other, '/turn/servers/10.0.0.2:3478', fake(300, '10.0.0.2:8080'));
    await createNode(other, '/turn/servers/10.0.0.3:3478', fake(50, '10.0.0.3:8080'));

    const selector = createSelector({ connect: zk.connect, path: '/turn/servers', sessionTimeoutMs: 3000 });
    h.onCleanup(() => selector.close());
    await selector.ready(10_000);
    assert.equal(selector.list().length, 3);
    const changes: { at: number; hosts: TurnHost[] }[] = [];
    selector.on('change', (hosts: TurnHost[]) => changes.push({ at: Date.now(), hosts }));
    const waitFor = (what: string, pred: (hosts: TurnHost[]) => boolean, timeoutMs = 10_000) =>
      new Promise<number>((resolve, reject) => {
        if (pred(selector.list())) return resolve(Date.now());
        const timer = setTimeout(
          () => reject(new Error(`selector: ${what} not seen within ${timeoutMs} ms`)),
          timeoutMs,
        );
        const onChange = (hosts: TurnHost[]) => {
          if (!pred(hosts)) return;
          clearTimeout(timer);
          selector.off('change', onChange);
          resolve(Date.now());
        };
        selector.on('change', onChange);
      });

    const m = await startMonitor(h, {}, { rawConfig: config });
    assert.equal(
      (await m.waitForLog((e) => e.event === 'interface')).interface,
      'tm0',
      'default-route interface logged at start',
    );
    await waitFor('the real monitor', (hosts) => hosts.some((x) => x.name === realName));
    const list = selector.list();
    assert.deepEqual(
      list.map((x) => x.name),
      [realName, '10.0.0.1:3478', '10.0.0.2:3478', '10.0.0.3:3478'],
      'sorted by freeTraffic',
    );
    assert.equal(list[0].freeTraffic, 1000);
    assert.equal(list[0].restAddr, `127.0.0.1:${(config.http as { port: number }).port}`);

    // pick(200): round-robin over the three hosts with at least 200 free, never the 50 one.
    const picks = Array.from({ length: 6 }, () => selector.pick(200)?.name);
    const eligible = ['10.0.0.1:3478', '10.0.0.2:3478', realName].sort();
    assert.deepEqual(picks, [...eligible, ...eligible], 'each eligible host in turn');
    assert.equal(selector.pick(5000)?.name, realName, 'none qualifies: the most free');

    // A data change is seen, and re-sorts.
    await setNode(other, '/turn/servers/10.0.0.3:3478', fake(990, '10.0.0.3:8080'));
    await waitFor('new data', (hosts) => hosts.find((x) => x.name === '10.0.0.3:3478')?.freeTraffic === 990);
    assert.equal(selector.list()[1].name, '10.0.0.3:3478');

    // A host that disappears drops out at once.
    const removedAt = Date.now();
    await removeNode(other, '/turn/servers/10.0.0.1:3478');
    const droppedAt = await waitFor('10.0.0.1 gone', (hosts) => !hosts.some((x) => x.name === '10.0.0.1:3478'));
    t.diagnostic(`removed host dropped out ${droppedAt - removedAt} ms after its delete`);
    for (let i = 0; i < 6; i++) assert.notEqual(selector.pick(200)?.name, '10.0.0.1:3478');

    // The CLI prints them (JSON and table).
    const json = await h.run(
      'servers',
      process.execPath,
      [monitorBin, 'servers', '--zookeeper', zk.connect, '--json'],
      { cwd: repoRoot },
    );
    assert.equal(json.code, 0, json.output);
    const printed = JSON.parse(json.output) as TurnHost[];
    assert.deepEqual(
      printed.map((x) => x.name),
      [realName, '10.0.0.3:3478', '10.0.0.2:3478'],
    );
    const table = await h.run('servers', process.execPath, [monitorBin, 'servers', '--zookeeper', zk.connect]);
    assert.equal(table.code, 0, table.output);
    const rows = table.output.trim().split('\n');
    assert.match(rows[0], /^HOST\s+FREE Mbps\s+USED\/CAP\s+RX\s+TX\s+ALLOCS\s+AGE\s+REST\s+SERVING$/);
    assert.match(rows[1], new RegExp(`^${realName.replace(/\./g, '\\.')}\\s+1000\\.0\\s`));
    assert.match(
      rows[3],
      /^10\.0\.0\.2:3478\s+300\.0\s+700\.0\/1000\s+700\.0\s+10\.0\s+3\s+\d+s\s+10\.0\.0\.2:8080\s+yes$/,
    );
    t.diagnostic('\n' + table.output);

    // --watch prints again on every change (one JSON array a line with --json) until SIGINT.
    const watcher = h.spawn('servers-watch', process.execPath, [
      monitorBin,
      'servers',
      '--zookeeper',
      zk.connect,
      '--json',
      '--watch',
    ]);
    const lines = () =>
      watcher
        .output()
        .split('\n')
        .filter((l) => l.startsWith('['));
    const waitLines = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`--watch printed ${lines().length} lines, wanted ${n}`)),
          10_000,
        );
        const check = () => {
          if (lines().length < n) return;
          clearTimeout(timer);
          watcher.child.stdout?.off('data', check);
          resolve();
        };
        watcher.child.stdout?.on('data', check);
        check();
      });
    await waitLines(1);
    await setNode(other, '/turn/servers/10.0.0.2:3478', fake(333, '10.0.0.2:8080'));
    await waitLines(2);
    assert.equal((JSON.parse(lines()[1]) as TurnHost[]).find((x) => x.name === '10.0.0.2:3478')?.freeTraffic, 333);
    watcher.child.kill('SIGINT');
    assert.equal((await watcher.exited).code, 0);

    // Closing the other session drops its (ephemeral) hosts; stopping the monitor drops the last.
    await zkClose(other);
    await waitFor('only the real monitor left', (hosts) => hosts.length === 1);
    assert.equal(selector.pick(200)?.name, realName);
    assert.equal((await m.stop()).code, 0);
    await waitFor('no host left', (hosts) => hosts.length === 0);
    assert.equal(selector.pick(0), null, 'null when none serves');
    await selector.close();
  },
  { timeout: 60_000 },
);

harnessTest(
  'the CLI fails clearly when ZooKeeper cannot be reached; the package exports turn-monitor/selector',
  async (h) => {
    const r = await h.run('servers', process.execPath, [
      monitorBin,
      'servers',
      '--zookeeper',
      '127.0.0.1:9',
      '--timeout',
      '1500',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.output, /no listing of \/turn\/servers from ZooKeeper within 1500 ms/);
    const imp = await h.run(
      'import',
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "const m = await import('turn-monitor/selector'); console.log(typeof m.createSelector)",
      ],
      { cwd: repoRoot },
    );
    assert.equal(imp.output.trim(), 'function', imp.output);
  },
);
