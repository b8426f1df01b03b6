import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { harnessTest } from '../harness/harness.js';
import { createNode, zkClose, zkConnect } from '../harness/discovery.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { monitorBin, repoRoot, startMonitor } from '../harness/monitor.js';
import { waitUntil } from '../../src/process/wait.js';
import { startZookeeper } from '../harness/services.js';
import { freePort } from '../../src/process/ports.js';

const KEY = 'fleet-api-key-0123456789';
const ROOT = '/turn/fleet-test';

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  body: string;
}

/** A fake host API: answers the documented routes (or hangs, for `hang`), records every request. */
async function fakeHost(mode: 'ok' | 'hang' | 'refuse-key') {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
      if (mode === 'hang') return; // never answers
      const json = (status: number, v: unknown) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(v));
      if (mode === 'refuse-key' || req.headers.authorization !== `Bearer ${KEY}`)
        return json(401, { error: 'missing or invalid API key' });
      if (req.method === 'GET' && req.url === '/sessions')
        return json(200, [{ clientId: 'alice' }, { clientId: 'bob' }]);
      if (req.method === 'POST' && /^\/clients\/[^/]+\/revoke$/.test(req.url!)) return json(200, { revoked: 1 });
      if (req.method === 'POST' && req.url === '/drain') return json(202, { draining: true });
      json(404, { error: 'not found' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { seen, server, restAddr: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

const payload = (restAddr: string) => ({
  freeTraffic: 900,
  restAddr,
  serving: true,
  capacityMbps: 1000,
  updatedAt: new Date().toISOString(),
});

harnessTest(
  'fleet sessions | revoke | drain: fans out to every registered host, one line each, a down or silent host reported and exit 1',
  async (h) => {
    const zk = await startZookeeper(h);
    const [a, b, silent] = await Promise.all([fakeHost('ok'), fakeHost('ok'), fakeHost('hang')]);
    h.onCleanup(async () => {
      for (const s of [a, b, silent]) s.server.closeAllConnections();
      await Promise.all([a, b, silent].map((s) => new Promise((r) => s.server.close(r))));
    });
    const c = await zkConnect(zk.connect);
    h.onCleanup(() => zkClose(c));
    await createNode(c, `${ROOT}/host-a:3478`, payload(a.restAddr));
    await createNode(c, `${ROOT}/host-b:3478`, payload(b.restAddr));
    const fleetAs = (key: string, timeoutSec: string, ...args: string[]) =>
      h.run('fleet', process.execPath, [
        monitorBin,
        'fleet',
        '--zookeeper',
        zk.connect,
        '--path',
        ROOT,
        '--key',
        key,
        '--timeout',
        timeoutSec,
        ...args,
      ]);
    const fleet = (...args: string[]) => fleetAs(KEY, '2', ...args);

    // All hosts up.
    let r = await fleet('sessions');
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /^host-a:3478\s+ok\s+2 sessions$/m);
    assert.match(r.output, /^host-b:3478\s+ok\s+2 sessions$/m);
    r = await fleet('revoke', 'alice');
    assert.equal(r.code, 0, r.output);
    for (const s of [a, b])
      assert.ok(
        s.seen.some((q) => q.method === 'POST' && q.url === '/clients/alice/revoke' && q.auth === `Bearer ${KEY}`),
      );

    // drain reaches only the named host, with the timeout in its body.
    r = await fleet('drain', 'host-b:3478', '--drain-timeout', '30');
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /^host-b:3478\s+ok\s+draining$/m);
    assert.doesNotMatch(r.output, /host-a/);
    assert.deepEqual(JSON.parse(b.seen.find((q) => q.url === '/drain')!.body), { timeoutSec: 30 });
    assert.equal(
      a.seen.some((q) => q.url === '/drain'),
      false,
    );

    // One host down (nothing listens), one that never answers: both reported, the others still acted on.
    await createNode(c, `${ROOT}/host-down:3478`, payload(`127.0.0.1:${await freePort()}`));
    await createNode(c, `${ROOT}/host-silent:3478`, payload(silent.restAddr));
    const t0 = Date.now();
    r = await fleet('revoke', 'bob');
    assert.equal(r.code, 1, r.output);
    assert.ok(Date.now() - t0 < 10_000, 'a silent host is not waited on forever');
    assert.match(r.output, /^host-down:3478\s+error\s+ECONNREFUSED$/m);
    assert.match(r.output, /^host-silent:3478\s+error\s+no answer within 2 s$/m);
    for (const s of [a, b])
      assert.ok(
        s.seen.some((q) => q.url === '/clients/bob/revoke'),
        'the serving hosts revoked bob',
      );
    r = await fleet('sessions', '--json');
    assert.equal(r.code, 1);
    const results = JSON.parse(r.output) as { host: string; ok: boolean }[];
    assert.deepEqual(
      results.map((x) => [x.host, x.ok]),
      [
        ['host-a:3478', true],
        ['host-b:3478', true],
        ['host-down:3478', false],
        ['host-silent:3478', false],
      ],
    );

    // A wrong key is an error line with the host's reason; an unknown host to drain is an error.
    r = await fleetAs('wrong-key-0123456789', '1', 'sessions');
    assert.match(r.output, /^host-a:3478\s+error\s+HTTP 401: missing or invalid API key$/m);
    r = await fleet('drain', 'nope:1');
    assert.equal(r.code, 1);
    assert.match(r.output, /host nope:1 is not in the registry/);

    // A real monitor in the registry: the fan-out reaches its published restAddr and its real
    // GET /sessions. Its live /metrics carries every metric the Grafana dashboard queries.
    const m = await startMonitor(h, {
      zookeeper: { connect: zk.connect, path: '/turn/real' },
      discovery: { intervalSec: 0.2 },
    });
    await waitUntil(
      'monitor published',
      async () => /^turn_monitor_discovery_published 1$/m.test((await m.get('/metrics')).text),
      15_000,
    );
    r = await h.run('fleet', process.execPath, [
      monitorBin,
      'fleet',
      '--zookeeper',
      zk.connect,
      '--path',
      '/turn/real',
      '--timeout',
      '2',
      'sessions',
    ]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /^\S+\s+ok\s+0 sessions$/m);
    const metrics = (await m.get('/metrics')).text;
    const dashboard = JSON.parse(readFileSync(path.join(repoRoot, 'dashboards', 'turn-monitor.json'), 'utf8')) as {
      panels: { targets: { expr: string }[] }[];
    };
    const names = new Set(
      dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/turn_monitor_[a-z_]+/g) ?? [])),
    );
    assert.ok(names.size >= 10, [...names].join(' '));
    for (const name of names)
      assert.match(metrics, new RegExp(`^# TYPE ${name} `, 'm'), `dashboard metric ${name} in /metrics`);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 60_000 },
);
