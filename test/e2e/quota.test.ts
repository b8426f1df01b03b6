import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest, type Harness } from '../harness/harness.js';
import { coturnSessions } from '../harness/coturn-cli.js';
import { killOrphans, monitorBin, startMonitor, type MonitorProcess } from '../harness/monitor.js';
import { PG_PASSWORD, startPostgres, type Postgres } from '../harness/postgres.js';
import { relayAsClient } from '../harness/relay.js';
import { startPeer, startZookeeper } from '../harness/services.js';
import { WebhookReceiver } from '../harness/webhook-receiver.js';
import { waitUntil } from '../../src/process/wait.js';

const KEY = 'quota-api-key-0123456789';
const auth = { headers: { authorization: `Bearer ${KEY}` } };
const QUOTA = 3_000_000;

const status = async (m: MonitorProcess, clientId: string) =>
  (await m.get(`/turncredential?user=${clientId}`, auth)).status;
const held = async (m: MonitorProcess, clientId: string) =>
  [...(await coturnSessions(m)).ids.values()].filter((u) => u.endsWith(`:${clientId}`)).length;
const everywhere = (what: string, ms: MonitorProcess[], want: number, timeoutMs: number) =>
  waitUntil(
    `${what} on every host`,
    async () => (await Promise.all(ms.map((m) => status(m, 'alice')))).every((s) => s === want),
    timeoutMs,
    20,
  );
const setQuota = (pg: Postgres, bytes: number) =>
  pg.query(`UPDATE turn_monitor.client_quotas SET period_bytes = $1 WHERE client_id = 'alice'`, [bytes]);

harnessTest(
  'quotas across a fleet: a 3 MB quota crossed through two hosts warns once, exceeds once, cuts both hosts and a host started later; a raise or a new period lifts it; a killed enforcer is replaced within 10 s',
  async (h: Harness, t) => {
    const [pg, zk, peer, hooks] = await Promise.all([
      startPostgres(h),
      startZookeeper(h),
      startPeer(h),
      WebhookReceiver.start(h),
    ]);
    const clock = path.join(h.dir, 'quota-clock');
    const host = (name: string, fleet = true) =>
      startMonitor(
        h,
        {
          dataDir: path.join(h.dir, `data-${name}`),
          http: { apiKeys: [KEY] },
          credentials: { mode: 'secret', validitySec: 600 },
          zookeeper: { connect: zk.connect },
          ...(fleet && {
            export: { postgres: { url: pg.url, hostId: name, intervalSec: 0.3 } },
            quotas: { checkIntervalSec: 1 },
            webhooks: { endpoints: [{ url: hooks.url, secret: hooks.secret, events: ['quota.*'] }] },
          }),
        },
        { configFile: path.join(h.dir, `${name}.json`), env: { TURN_MONITOR_QUOTA_CLOCK_FILE: clock } },
      );
    const [a, b] = await Promise.all([host('a'), host('b')]);
    const fleet = [a, b];
    await waitUntil(
      'a quota check ran',
      async () =>
        (await a.health()).body.quotas.lastCheckAt !== null || (await b.health()).body.quotas.lastCheckAt !== null,
      15_000,
    );
    await pg.query(
      `INSERT INTO turn_monitor.client_quotas (realm, client_id, period_bytes, note)
       VALUES ('test.local', 'alice', ${QUOTA}, 'plan S'), ('test.local', 'broken', -5, 'a bad row')`,
    );

    // alice relays through both hosts at a fixed rate (-z 1: a message a millisecond).
    const relays = [];
    for (const m of fleet) {
      relays.push(await relayAsClient(h, m, { clientId: 'alice', apiKey: KEY, peerPort: peer.port, messages: 20_000 }));
    }
    await hooks.waitFor('quota.exceeded', () => hooks.ofType('quota.exceeded').length === 1, 40_000);
    await waitUntil(
      "alice's allocations cut on both hosts",
      async () => (await Promise.all(fleet.map((m) => held(m, 'alice')))).every((n) => n === 0),
      5000,
    );
    await everywhere('alice refused', fleet, 403, 3000);
    for (const r of relays) r.child.kill('SIGKILL');
    assert.equal(hooks.ofType('quota.warning').length, 1);
    const exceeded = hooks.ofType('quota.exceeded')[0].event.data;
    assert.equal(exceeded.clientId, 'alice');
    assert.equal(exceeded.quotaBytes, QUOTA);
    assert.ok(exceeded.usedBytes >= QUOTA, JSON.stringify(exceeded));
    const view = (await b.get('/clients/alice/quota', auth)).body;
    assert.equal(view.state, 'exceeded');
    assert.equal(view.quotaBytes, QUOTA);
    assert.equal(view.period, 'month');
    const cli = await h.run('cli', process.execPath, [monitorBin, 'quota', 'alice', '--config', a.configFile]);
    assert.equal(cli.code, 0, cli.output);
    assert.match(cli.output, /state\s+exceeded/);
    assert.match((await a.get('/metrics')).text, /^turn_monitor_quota_exceeded_clients 1$/m);
    const health = (await Promise.all(fleet.map(async (m) => (await m.health()).body.quotas))).find((q) => q.enforcer);
    assert.deepEqual(health.badRows, [{ realm: 'test.local', clientId: 'broken', why: 'period_bytes is negative' }]);

    // A monitor started afterwards refuses alice too.
    const c = await host('c', false);
    await everywhere('alice refused on the new host', [c], 403, 10_000);
    assert.equal((await c.stop()).code, 0);

    // Raised above her usage: lifted within two check intervals.
    let t0 = Date.now();
    await setQuota(pg, 1e9);
    await everywhere('alice served again', fleet, 200, 5000);
    const liftMs = Date.now() - t0;
    assert.ok(liftMs <= 3000, `lifted after ${liftMs} ms`);
    t.diagnostic(`exceeded at ${exceeded.usedBytes} bytes; raise → served on both hosts after ${liftMs} ms`);
    await hooks.waitFor('quota.reset', () => hooks.ofType('quota.reset').length === 1);
    assert.equal(hooks.ofType('quota.reset')[0].event.data.reason, 'raised');

    // Lowered again: denied; a new period (the enforcer's clock a month on): lifted.
    await setQuota(pg, QUOTA);
    await everywhere('alice refused again', fleet, 403, 5000);
    writeFileSync(clock, String(35 * 86_400_000));
    await everywhere('alice served in the new period', fleet, 200, 5000);
    await hooks.waitFor('quota.reset (period)', () =>
      hooks.ofType('quota.reset').some((d) => d.event.data.reason === 'period'),
    );
    writeFileSync(clock, '0');
    await everywhere('alice refused back in this period', fleet, 403, 5000);

    // The enforcer killed (-9): the other takes over and enforces within 10 s.
    const enforcer = (await a.health()).body.quotas.enforcer ? a : b;
    const other = enforcer === a ? b : a;
    assert.equal((await other.health()).body.quotas.enforcer, false);
    process.kill(enforcer.pid, 'SIGKILL');
    await enforcer.exited;
    t0 = Date.now();
    await setQuota(pg, 1e9);
    await everywhere('alice lifted by the new enforcer', [other], 200, 10_000);
    assert.ok(Date.now() - t0 < 10_000);
    t.diagnostic(`kill -9 of the enforcer → the other enforced after ${Date.now() - t0} ms`);
    assert.equal((await other.health()).body.quotas.enforcer, true);
    await killOrphans(enforcer);
    assert.equal((await other.stop()).code, 0);
  },
  { timeout: 180_000 },
);

harnessTest(
  'quotas on a single host without PostgreSQL: overrides from quotas.clients, usage from its own usage.db',
  async (h: Harness) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, {
      http: { apiKeys: [KEY] },
      credentials: { mode: 'secret', validitySec: 600 },
      quotas: { checkIntervalSec: 0.5, clients: { alice: 200_000, bob: null } },
    });
    const relay = await relayAsClient(h, m, { clientId: 'alice', apiKey: KEY, peerPort: peer.port, messages: 20_000 });
    await waitUntil('alice refused', async () => (await status(m, 'alice')) === 403, 30_000, 50);
    await waitUntil('alice cut', async () => (await held(m, 'alice')) === 0, 3000);
    relay.child.kill('SIGKILL');
    const view = (await m.get('/clients/alice/quota', auth)).body;
    assert.equal(view.state, 'exceeded');
    assert.equal(view.quotaBytes, 200_000);
    assert.equal((await m.get('/clients/bob/quota', auth)).body.quotaBytes, null);
    const q = (await m.health()).body.quotas;
    assert.equal(q.store, 'local');
    assert.equal(q.enforcer, true);
    assert.equal(q.exceeded, 1);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 60_000 },
);

harnessTest(
  'PostgreSQL down: quotas are not enforced meanwhile (health says so, one warning for the outage), nothing already denied is lifted; back up: enforced again',
  async (h: Harness) => {
    const [pg, peer] = await Promise.all([startPostgres(h), startPeer(h)]);
    const m = await startMonitor(h, {
      http: { apiKeys: [KEY] },
      credentials: { mode: 'secret', validitySec: 600 },
      export: { postgres: { url: pg.url, hostId: 'solo', intervalSec: 0.3 } },
      quotas: { checkIntervalSec: 0.5 },
    });
    await waitUntil('quota checks run', async () => (await m.health()).body.quotas.lastCheckAt !== null, 15_000);
    await pg.query(
      `INSERT INTO turn_monitor.client_quotas (realm, client_id, period_bytes) VALUES ('test.local', 'alice', 200000)`,
    );
    const relay = await relayAsClient(h, m, { clientId: 'alice', apiKey: KEY, peerPort: peer.port, messages: 20_000 });
    await waitUntil('alice refused', async () => (await status(m, 'alice')) === 403, 30_000, 50);
    relay.child.kill('SIGKILL');

    await pg.stop();
    await waitUntil('health: not enforced', async () => (await m.health()).body.quotas.enforced === false, 15_000);
    const failed = () => m.logs.filter((e) => e.event === 'quotas-failed').length;
    // Several failed checks later: still one warning, and alice still denied.
    const checksFailed = async () => {
      const text = (await m.get('/metrics')).text;
      return Number(/turn_monitor_quota_checks_total\{result="failed"\} (\d+)/.exec(text)?.[1] ?? 0);
    };
    await waitUntil('three failed checks', async () => (await checksFailed()) >= 3, 15_000);
    assert.equal(failed(), 1, 'one warning for the outage');
    const q = (await m.health()).body.quotas;
    assert.equal(q.status, 'degraded');
    assert.match(q.error, /not enforced/);
    assert.ok(!JSON.stringify(q).includes(PG_PASSWORD) && !m.output().includes(PG_PASSWORD), 'no password shown');
    assert.equal(await status(m, 'alice'), 403, 'a denial is not lifted by an outage');
    assert.equal((await m.get('/turncredential?user=bob', auth)).status, 200);

    await pg.start();
    await waitUntil('enforced again', async () => (await m.health()).body.quotas.enforced === true, 20_000);
    assert.ok(m.logs.some((e) => e.event === 'quotas-recovered'));
    assert.equal(await status(m, 'alice'), 403);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);
