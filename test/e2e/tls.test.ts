import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { writeFileSync } from 'node:fs';
import { harnessTest, waitExit, type Harness } from '../harness/harness.js';
import { linkPair, makePair } from '../harness/certs.js';
import { monitorBin, startMonitor, testConfig, type MonitorProcess } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';
import { monitorRedisPort, recordTotals } from '../harness/statsdb.js';
import { freePort } from '../../src/process/ports.js';
import { waitUntil } from '../../src/process/wait.js';
import { tlsStunProbe } from '../../src/tls/tls-probe.js';

const KEY = 'tls-test-api-key-0123456789';
const auth = { headers: { authorization: `Bearer ${KEY}` } };

/** A monitor with TLS on certbot-style symlinks in <dir>/live. */
async function tlsMonitor(h: Harness, pair: { cert: string; key: string }, turnserver: Record<string, unknown> = {}) {
  const live = linkPair(path.join(h.dir, 'live'), { cert: pair.cert, key: pair.key });
  const tlsPort = await freePort();
  const m = await startMonitor(h, {
    // The Redis source explicitly: its independent subscriber is the test's truth ('auto' is 'log' on 4.6.1).
    stats: { source: 'redis' },
    http: { apiKeys: [KEY] },
    turnserver: { ...turnserver, tls: { ...live, port: tlsPort, serverName: 'turn.test' } },
  });
  return { m, tlsPort, live };
}

async function usage(m: MonitorProcess): Promise<any[]> {
  const r = await m.get('/usage', auth);
  if (r.status !== 200) throw new Error(`/usage: HTTP ${r.status}`);
  return r.body.rows;
}

const served = async (port: number) => (await tlsStunProbe('127.0.0.1', port, 1000)).fingerprint;
const tlsHealth = async (m: MonitorProcess) => (await m.health()).body;

harnessTest(
  'turns: relay with a served credential, exact accounting; a renewal during a live TLS relay is served within 2 s without loss',
  async (h) => {
    const first = makePair(path.join(h.dir, 'archive'), 'cert1');
    const second = makePair(path.join(h.dir, 'archive'), 'cert2');
    const peer = await startPeer(h);
    const { m, tlsPort } = await tlsMonitor(h, first);
    const truth = await recordTotals(h, await monitorRedisPort(m));
    assert.equal(await served(tlsPort), first.fingerprint);

    const cred = (await m.get('/turncredential', auth)).body;
    assert.ok(cred.uris.includes(`turns:turn.test:${tlsPort}?transport=tcp`), cred.uris.join(' '));
    assert.deepEqual(cred.iceServers[0].urls, cred.uris);
    const health = await tlsHealth(m);
    assert.equal(health.status, 'ok');
    assert.equal(health.tls.fingerprint, first.fingerprint);
    assert.deepEqual(health.tls.names, ['turn.test']);
    assert.ok(health.tls.daysLeft >= 29);

    const base = {
      turnPort: tlsPort,
      peerPort: peer.port,
      user: cred.username,
      password: cred.password,
      tls: true,
      length: 120,
    };
    const short = await runUclient(h, { ...base, messages: 40 });
    assert.equal(short.code, 0, short.output.slice(-400));
    assert.equal(short.lostPackets, 0);

    // A long relay; the pair is renewed (certbot-style symlink swap) while it runs. TCP to the
    // peer too: on this loaded 2-core VM a UDP peer leg sometimes loses a few datagrams around a
    // SIGUSR2 (and now and then without one), which uclient counts as lost; a TCP relay must
    // lose nothing at all.
    const pid = health.turnserver.pid;
    const live = runUclient(h, { ...base, messages: 150, tcpRelay: true });
    await waitUntil(
      'a live TLS allocation',
      async () => (await m.get('/allocations', auth)).body.some((a: any) => a.transport === 'TLS'),
      10_000,
    );
    const replacedAt = Date.now();
    linkPair(path.join(h.dir, 'live'), second);
    await waitUntil(
      'the renewed certificate served',
      async () => (await served(tlsPort)) === second.fingerprint,
      5000,
      20,
    );
    const tookMs = Date.now() - replacedAt;
    assert.ok(tookMs <= 2000, `new certificate served after ${tookMs} ms`);
    const relay = await live;
    assert.equal(relay.code, 0, relay.output.slice(-400));
    assert.equal(relay.lostPackets, 0, 'no loss across the reload');

    const after = await tlsHealth(m);
    assert.equal(after.turnserver.pid, pid, 'turnserver was not restarted');
    assert.equal(after.turnserver.restarts, 0);
    assert.equal(after.tls.fingerprint, second.fingerprint);
    assert.equal(after.tls.lastError, null);
    assert.ok(after.tls.lastReloadAt);
    const metrics = (await m.get('/metrics')).text;
    assert.match(metrics, /turn_monitor_tls_reloads_total\{result="ok"\} 1\b/);
    assert.match(metrics, /turn_monitor_tls_cert_expiry_timestamp_seconds \d/);

    // Every allocation coturn deleted is recorded once, whole, with coturn's own totals.
    await waitUntil(
      'every deleted allocation recorded',
      async () => {
        const rows = await usage(m);
        return (
          truth.deleted.size >= 2 &&
          [...truth.deleted].every((id) => rows.some((r) => r.allocationId === id && r.endReason === 'deleted'))
        );
      },
      15_000,
    );
    const rows = (await usage(m)).filter((r) => r.username === cred.username);
    for (const id of truth.deleted) {
      const mine = rows.filter((r) => r.allocationId === id);
      assert.equal(mine.length, 1, `allocation ${id} recorded once`);
      const [row] = mine;
      const t = truth.totals.get(id)!;
      assert.deepEqual([row.rcvp, row.rcvb, row.sentp, row.sentb], t.client, `client counters of ${id}`);
      assert.deepEqual([row.peerRcvp, row.peerRcvb, row.peerSentp, row.peerSentb], t.peer, `peer counters of ${id}`);
      assert.equal(row.complete, true);
      assert.equal(row.transport, 'TLS');
    }
    assert.ok(
      rows.some((r) => r.peerSentb > 0),
      'relayed bytes recorded',
    );
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);

harnessTest(
  'broken renewals (garbage, foreign key, expired) are not loaded: old certificate served, nothing restarts, /health degraded',
  async (h) => {
    const archive = path.join(h.dir, 'archive');
    const first = makePair(archive, 'good1');
    const other = makePair(archive, 'other');
    const expired = makePair(archive, 'expired', { days: -1 });
    const renewed = makePair(archive, 'good2', { days: 5 });
    const garbage = { cert: path.join(archive, 'garbage.pem'), key: first.key };
    writeFileSync(garbage.cert, 'this is not a certificate\n');
    const { m, tlsPort } = await tlsMonitor(h, first, { restartDelayMs: 200 });
    let pid = (await tlsHealth(m)).turnserver.pid;
    const broken: [string, { cert: string; key: string }, RegExp][] = [
      ['garbage', garbage, /live\/cert\.pem \(-> \S+garbage\.pem\): no PEM certificate found/],
      ['foreign key', { cert: first.cert, key: other.key }, /other\.key\.pem\): the private key does not match/],
      ['expired', expired, /expired\.crt\.pem\): the certificate expired/],
    ];
    for (const [label, pair, reason] of broken) {
      linkPair(path.join(h.dir, 'live'), pair);
      await waitUntil(`${label} rejected`, async () => reason.test((await tlsHealth(m)).tls.lastError ?? ''), 5000);
      const health = await tlsHealth(m);
      assert.equal(health.status, 'degraded', label);
      assert.equal(health.tls.status, 'degraded', label);
      assert.equal(health.tls.fingerprint, first.fingerprint, `${label}: the old pair is still what is served`);
      assert.equal(await served(tlsPort), first.fingerprint, `${label}: old certificate served`);
      assert.equal(health.turnserver.pid, pid, `${label}: nothing restarted`);
    }
    assert.match((await m.get('/metrics')).text, /turn_monitor_tls_reloads_total\{result="rejected"\} 3\b/);
    // turnserver loads the monitor's copy of the last good pair: even a crash with a bad pair in
    // place brings it back with the old certificate, not without TLS.
    process.kill(pid, 'SIGKILL');
    await waitUntil(
      'turnserver back',
      async () => {
        const t = (await tlsHealth(m)).turnserver;
        return t.pid !== pid && t.state === 'ready';
      },
      10_000,
    );
    assert.equal(await served(tlsPort), first.fingerprint, 'restarted with the last good pair');
    pid = (await tlsHealth(m)).turnserver.pid;
    assert.doesNotMatch(m.output(), /BEGIN (EC )?PRIVATE KEY/, 'no key material logged');

    // The deploy hook: `tls --reload` returns once the new pair is served.
    assert.equal((await m.get('/tls/reload', { method: 'POST' })).status, 401);
    // With the expired pair still in place, the hook fails with the reason and loads nothing.
    const refused = await h.run('cli', process.execPath, [monitorBin, 'tls', '--config', m.configFile, '--reload'], {
      env: { ...process.env, TURN_MONITOR_API_KEY: KEY },
    });
    assert.equal(refused.code, 1, refused.output);
    assert.match(refused.output, /TLS reload failed: .*the certificate expired/);
    assert.equal(await served(tlsPort), first.fingerprint);
    linkPair(path.join(h.dir, 'live'), renewed);
    const cli = await h.run(
      'cli',
      process.execPath,
      [monitorBin, 'tls', '--config', m.configFile, '--reload', '--json'],
      { env: { ...process.env, TURN_MONITOR_API_KEY: KEY } },
    );
    assert.equal(cli.code, 0, cli.output);
    assert.equal(JSON.parse(cli.output).fingerprint, renewed.fingerprint);
    assert.equal(await served(tlsPort), renewed.fingerprint);
    const show = await h.run('cli', process.execPath, [monitorBin, 'tls', '--config', m.configFile]);
    assert.equal(show.code, 0, show.output);
    assert.match(show.output, new RegExp(`fingerprint\\s+${renewed.fingerprint}`));
    assert.match(show.output, /daysLeft\s+[45]\n/);
    const health = await tlsHealth(m);
    assert.equal(health.tls.lastError, null);
    assert.equal(health.tls.status, 'degraded', 'expires within warnDays');
    assert.match(health.tls.warning, /expires in [45] days/);
    assert.equal(health.turnserver.pid, pid);
    const shown = await m.get('/tls', auth);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.fingerprint, renewed.fingerprint);
    assert.equal((await m.get('/tls')).status, 401);
  },
);

harnessTest(
  'start-up: a bad pair exits 2 naming the file, nothing spawned; a TLS port that cannot be bound fails start-up naming it',
  async (h) => {
    const archive = path.join(h.dir, 'archive');
    const good = makePair(archive, 'good');
    const other = makePair(archive, 'other');
    const garbage = path.join(archive, 'garbage.pem');
    writeFileSync(garbage, 'junk\n');
    const cases: [string, { cert: string; key: string }, RegExp][] = [
      ['garbage cert', { cert: garbage, key: good.key }, /garbage\.pem: no PEM certificate found/],
      ['foreign key', { cert: good.cert, key: other.key }, /other\.key\.pem: the private key does not match/],
      ['missing file', { cert: path.join(archive, 'nope.pem'), key: good.key }, /nope\.pem: cannot read it \(ENOENT\)/],
    ];
    for (const [label, pair, expected] of cases) {
      const m = await startMonitor(
        h,
        { turnserver: { tls: { cert: pair.cert, key: pair.key, port: await freePort() } } },
        { waitReady: false, configFile: path.join(h.dir, `${label.replace(/ /g, '-')}.json`) },
      );
      const exit = await waitExit(m.tracked, 15_000);
      assert.equal(exit.code, 2, `${label}: ${m.output().slice(-300)}`);
      assert.match(m.output(), expected, label);
      assert.equal(
        m.logs.some((e) => e.event === 'spawn'),
        false,
        `${label}: nothing spawned`,
      );
      assert.doesNotMatch(m.output(), /BEGIN|PRIVATE KEY-----/, `${label}: no key material`);
    }
    // turnserver that cannot load the certificate it is given (here a later cert= line wins) only
    // warns and serves without TLS: that is a start-up failure, not a silent downgrade.
    const downgraded = await startMonitor(
      h,
      {
        turnserver: {
          tls: { cert: good.cert, key: good.key, port: await freePort() },
          extraConfig: [`cert=${path.join(archive, 'absent.pem')}`],
        },
      },
      { waitReady: false, configFile: path.join(h.dir, 'downgraded.json') },
    );
    assert.equal((await waitExit(downgraded.tracked, 20_000)).code, 1, downgraded.output().slice(-300));
    assert.match(downgraded.output(), /turnserver started without its TLS listener/);
    const config = await testConfig(h, {
      turnserver: { tls: { cert: good.cert, key: good.key, port: await freePort() } },
    });
    const tlsPort = ((config.turnserver as Record<string, unknown>).tls as { port: number }).port;
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(tlsPort, '127.0.0.1', () => resolve()));
    h.onCleanup(() => new Promise((r) => holder.close(() => r())));
    const m = await startMonitor(h, {}, { rawConfig: config, waitReady: false });
    const exit = await waitExit(m.tracked, 20_000);
    assert.equal(exit.code, 1, m.output().slice(-300));
    assert.match(m.output(), new RegExp(`cannot bind its listening address 127\\.0\\.0\\.1:${tlsPort}`));
  },
);
