import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderTable } from '../../src/cli/servers.js';
import { buildConfig } from '../../src/config/load.js';
import { ABSURD_MBPS, BandwidthMeter, computeRates, freeTraffic } from '../../src/discovery/bandwidth.js';
import { nodeNameFor, restAddrFor } from '../../src/discovery/identity.js';
import { hostPort, turnUrisFor } from '../../src/util/addresses.js';
import { CounterError, parseCounter, parseDefaultRoute } from '../../src/discovery/nic-counters.js';
import { connectStringProblem } from '../../src/config/connect-string.js';
import { parseHostPayload } from '../../src/discovery/payload.js';
import { pickHost, sortByFree, type TurnHost } from '../../src/discovery/round-robin.js';

const MB = 1e6 / 8; // bytes in one megabit

test('rates over the elapsed time; freeTraffic = capacity − busier direction, one decimal, ≥ 0', () => {
  const r = computeRates({ rxBytes: 0, txBytes: 0, atMs: 0 }, { rxBytes: 500 * MB, txBytes: 200 * MB, atMs: 2000 });
  assert.deepEqual(r, { kind: 'rates', rates: { rxMbps: 250, txMbps: 100 } });
  assert.equal(freeTraffic(1000, { rxMbps: 250, txMbps: 100 }), 750);
  assert.equal(freeTraffic(1000, { rxMbps: 100, txMbps: 257.77 }), 742.2, 'tx can be the bottleneck');
  assert.equal(freeTraffic(1000, { rxMbps: 1500, txMbps: 0 }), 0, 'never below 0');
  assert.equal(freeTraffic(1000, null), 1000, 'no rate yet: capacity');
});

test('first reading, counters going backwards, no time, absurd jumps: no rate', () => {
  assert.deepEqual(computeRates(null, { rxBytes: 1, txBytes: 1, atMs: 0 }), { kind: 'first' });
  const prev = { rxBytes: 4_000_000_000, txBytes: 10, atMs: 0 };
  assert.deepEqual(computeRates(prev, { rxBytes: 5, txBytes: 20, atMs: 1000 }), {
    kind: 'skipped',
    reason: 'counter-reset',
  });
  assert.deepEqual(computeRates(prev, { rxBytes: prev.rxBytes, txBytes: 20, atMs: 0 }), {
    kind: 'skipped',
    reason: 'no-time',
  });
  const huge = prev.rxBytes + (ABSURD_MBPS + 1) * MB;
  assert.deepEqual(computeRates(prev, { rxBytes: huge, txBytes: 20, atMs: 1000 }), {
    kind: 'skipped',
    reason: 'absurd',
  });
});

test('the meter keeps the last good figures over a skipped interval and restarts from the new baseline', () => {
  const m = new BandwidthMeter(1000);
  assert.deepEqual(m.figures, { freeTraffic: 1000, rxMbps: null, txMbps: null });
  m.add({ rxBytes: 0, txBytes: 0, atMs: 0 });
  m.add({ rxBytes: 250 * MB, txBytes: 100 * MB, atMs: 1000 });
  assert.deepEqual(m.figures, { freeTraffic: 750, rxMbps: 250, txMbps: 100 });
  assert.equal(m.add({ rxBytes: 10, txBytes: 10, atMs: 2000 }).kind, 'skipped');
  assert.deepEqual(m.figures, { freeTraffic: 750, rxMbps: 250, txMbps: 100 });
  m.add({ rxBytes: 10 + 500 * MB, txBytes: 10, atMs: 3000 });
  assert.deepEqual(m.figures, { freeTraffic: 500, rxMbps: 500, txMbps: 0 });
  m.resetBaseline();
  assert.equal(m.add({ rxBytes: 0, txBytes: 0, atMs: 4000 }).kind, 'first');
});

test('default route interface from /proc/net/route; counter file parsing', () => {
  const route = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'wlan0\t00000000\t0102A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0',
    'bond0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0',
    'bond0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'down0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0',
  ].join('\n');
  assert.equal(parseDefaultRoute(route), 'bond0', 'lowest metric among up default routes');
  assert.equal(parseDefaultRoute(route.split('\n').slice(0, 1).join('\n')), null);
  assert.equal(parseCounter('123456789012\n', 'f'), 123456789012);
  assert.throws(() => parseCounter('', 'rx_bytes'), CounterError);
  assert.throws(() => parseCounter('-5', 'rx_bytes'), /rx_bytes does not hold a byte counter/);
});

test('node name, restAddr and TURN URIs', () => {
  const c = buildConfig(
    { turnserver: { listeningPort: 3478 }, http: { host: '10.1.2.3', port: 8080, apiKeys: ['k'.repeat(16)] } },
    '/tmp',
  );
  assert.equal(nodeNameFor(c, 'turn1'), 'turn1:3478');
  assert.equal(restAddrFor({ host: '10.1.2.3', port: 8080 }, c, 'turn1'), '10.1.2.3:8080');
  assert.equal(restAddrFor({ host: '0.0.0.0', port: 8080 }, c, 'turn1'), 'turn1:8080', 'wildcard: the hostname');
  assert.deepEqual(turnUrisFor(c, 'turn1'), [
    'turn:turn1:3478?transport=udp',
    'turn:turn1:3478?transport=tcp',
    'stun:turn1:3478',
  ]);
  const ext = buildConfig(
    {
      turnserver: { externalIp: '203.0.113.7', listeningPort: 3478 },
      http: { host: '::', port: 8080, apiKeys: ['k'.repeat(16)] },
    },
    '/tmp',
  );
  assert.equal(nodeNameFor(ext, 'turn1'), '203.0.113.7:3478');
  assert.equal(restAddrFor({ host: '::', port: 8080 }, ext, 'turn1'), '203.0.113.7:8080', 'wildcard: the external IP');
  assert.deepEqual(turnUrisFor(ext, 'turn1'), [
    'turn:203.0.113.7:3478?transport=udp',
    'turn:203.0.113.7:3478?transport=tcp',
    'stun:203.0.113.7:3478',
  ]);
  const uris = buildConfig(
    { credentials: { uris: ['turns:turn.example.org:5349'] }, discovery: { nodeName: 'edge-1' } },
    '/tmp',
  );
  assert.deepEqual(turnUrisFor(uris, 'x'), ['turns:turn.example.org:5349']);
  assert.equal(nodeNameFor(uris, 'x'), 'edge-1');
  assert.equal(hostPort('2001:db8::1', 3478), '[2001:db8::1]:3478');
});

const host = (name: string, freeTraffic: number, serving = true): TurnHost => ({
  name,
  freeTraffic,
  serving,
  restAddr: `${name}:8080`,
  turnUris: [],
  rxMbps: null,
  txMbps: null,
  capacityMbps: 1000,
  allocations: null,
  updatedAt: '',
  version: '',
});

test('pick: round-robin by name above the threshold, most-free fallback, null when none serves', () => {
  const hosts = [host('c', 500), host('a', 100), host('b', 900), host('d', 950, false)];
  assert.deepEqual(
    sortByFree(hosts).map((h) => h.name),
    ['d', 'b', 'c', 'a'],
  );
  let last: string | null = null;
  const seq: string[] = [];
  for (let i = 0; i < 4; i++) {
    const p: { host: TurnHost; roundRobin: boolean } = pickHost(hosts, 200, last)!;
    assert.equal(p.roundRobin, true);
    seq.push((last = p.host.name));
  }
  assert.deepEqual(seq, ['b', 'c', 'b', 'c'], 'a is below the threshold, d does not serve');
  // A host joining or leaving keeps the rotation going from where it was.
  assert.equal(pickHost([...hosts, host('bb', 800)], 200, 'b')?.host.name, 'bb');
  assert.equal(
    pickHost(
      hosts.filter((h) => h.name !== 'c'),
      200,
      'b',
    )?.host.name,
    'b',
  );
  assert.deepEqual(pickHost(hosts, 5000, null), { host: hosts[2], roundRobin: false }, 'fallback: most free serving');
  assert.equal(pickHost([host('x', 999, false)], 0, null), null);
  assert.equal(pickHost([], 0, null), null);
});

test('payload parsing is lenient but needs freeTraffic and restAddr (the seed fields)', () => {
  assert.deepEqual(parseHostPayload(Buffer.from('{"freeTraffic": 742.3, "restAddr": "10.0.0.1:8080"}')), {
    freeTraffic: 742.3,
    restAddr: '10.0.0.1:8080',
    turnUris: [],
    rxMbps: null,
    txMbps: null,
    capacityMbps: 0,
    allocations: null,
    serving: true,
    updatedAt: '',
    version: '',
  });
  assert.equal(parseHostPayload(Buffer.from('not json')), null);
  assert.equal(parseHostPayload(Buffer.from('{"restAddr": "x"}')), null);
  assert.equal(parseHostPayload(null), null);
  assert.equal(parseHostPayload(Buffer.from('{"freeTraffic": 1, "restAddr": "x", "serving": false}'))?.serving, false);
});

test('servers table', () => {
  const now = Date.parse('2026-01-01T00:01:00Z');
  const h = {
    ...host('10.0.0.1:3478', 742.3),
    rxMbps: 257.7,
    txMbps: 100,
    allocations: 12,
    updatedAt: '2026-01-01T00:00:55Z',
  };
  const out = renderTable([h], now).split('\n');
  assert.match(out[0], /^HOST\s+FREE Mbps/);
  assert.match(
    out[1],
    /^10\.0\.0\.1:3478\s+742\.3\s+257\.7\/1000\s+257\.7\s+100\.0\s+12\s+5s\s+10\.0\.0\.1:3478:8080\s+yes$/,
  );
  assert.equal(renderTable([], now), 'no TURN hosts published\n');
});

test('ZooKeeper connect strings are checked before they can crash the client', () => {
  assert.equal(connectStringProblem('127.0.0.1:2181'), null);
  assert.equal(connectStringProblem('zk1:2181,zk2:2181,zk3/chroot'), null);
  assert.match(connectStringProblem('foo:bar') ?? '', /not host:port/);
  assert.match(connectStringProblem('zk:70000') ?? '', /out of range/);
  assert.match(connectStringProblem('') ?? '', /at least one/);
  assert.throws(
    () => buildConfig({ zookeeper: { connect: 'zk:notaport' } }, '/tmp'),
    /config key "zookeeper.connect": must be host:port/,
  );
});
