import assert from 'node:assert/strict';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { allocationRecord, exportConfig, localShipper, pgMatches, rollupMismatches } from '../harness/export.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';
import { startPostgres } from '../harness/postgres.js';
import { runUclient, startPeer } from '../harness/services.js';
import { STATS_USER as USER } from '../harness/statsdb.js';
import { waitUntil } from '../../src/process/wait.js';

harnessTest(
  'fleet-check: a tampered rollup hour, month and host count are found (client, hours) and --repair rewrites them from the raw rows',
  async (h) => {
    const pg = await startPostgres(h);
    const peer = await startPeer(h);
    const configFile = path.join(h.dir, 'monitor.json');
    // Retention off: the synthetic January below must stay while the monitor maintains partitions.
    const m = await startMonitor(
      h,
      exportConfig(h, pg, 'host-c', { retentionMonths: null, rollupRetentionMonths: null }),
      { configFile },
    );
    const r = await runUclient(h, {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      clients: 2,
      messages: 40,
      length: 100,
    });
    assert.equal(r.code, 0, r.output.slice(-300));
    await waitUntil('relayed records shipped', () => pgMatches(pg, m, 'host-c'), 15_000);

    const check = async (...args: string[]) => {
      const res = await h.run('cli', process.execPath, [monitorBin, 'fleet-check', '--config', configFile, ...args]);
      return { code: res.code, out: res.output };
    };
    let c = await check();
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, /clients checked, rollup = raw rows/);

    // One hour of the relayed client's bill changed by hand.
    const [hour] = await pg.query<{ hour: string }>(
      `SELECT to_char(hour, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS hour FROM turn_monitor.client_usage_hourly
        WHERE client_id = $1 ORDER BY rcvb DESC LIMIT 1`,
      [USER.user],
    );
    await pg.query(
      `UPDATE turn_monitor.client_usage_hourly SET rcvb = rcvb + 123456 WHERE client_id = $1 AND hour = $2::timestamp`,
      [USER.user, hour.hour.replace('T', ' ').replace('Z', '')],
    );
    c = await check();
    assert.equal(c.code, 1, c.out);
    assert.match(c.out, new RegExp(`^client  \\S+/${USER.user}  .*rollup-raw: rcvb=123456  hours: ${hour.hour}$`, 'm'));

    // January (in-process shipper, its clock then): a three-hour call and short ones.
    let now = Date.UTC(2026, 0, 14, 10, 5);
    const s = localShipper(h, pg, 'host-j', { now: () => now });
    const call = allocationRecord('500000000000000001', {
      clientId: 'dave',
      username: '1795348399:dave',
      startedAt: now,
      lastEventAt: now,
      endedAt: null,
      endReason: null,
      client: [10, 1000, 10, 1000],
    });
    const shorts = [0, 1, 2].map((i) =>
      allocationRecord(`50000000000000010${i}`, {
        clientId: 'erin',
        username: '1795348399:erin',
        startedAt: Date.UTC(2026, 0, 14, 11, 10 + i),
        lastEventAt: Date.UTC(2026, 0, 14, 11, 20 + i),
      }),
    );
    s.write([call, ...shorts]);
    await s.ship();
    for (const [hr, n] of [
      [11, 2],
      [12, 3],
    ]) {
      now = Date.UTC(2026, 0, 14, hr, 30);
      s.write([{ ...call, lastEventAt: now, client: [10 * n, 1000 * n, 10 * n, 1000 * n] }]);
      await s.ship();
    }
    const jan = ['--from', '2026-01-14T11:00:00Z', '--to', '2026-01-14T12:00:00Z'];
    c = await check(...jan);
    assert.equal(c.code, 0, c.out);
    // dave's 11:00 changed within what his call could have relayed then: the client is reported
    // over his call's whole span (the window widened to it), without an hour.
    await pg.query(
      `UPDATE turn_monitor.client_usage_hourly SET rcvb = rcvb + 7 WHERE client_id = 'dave' AND hour = '2026-01-14 11:00'`,
    );
    // erin's January bill and one hour's host count changed.
    await pg.query(`UPDATE turn_monitor.client_usage_monthly SET sentb = sentb - 100 WHERE client_id = 'erin'`);
    await pg.query(`UPDATE turn_monitor.client_usage_hourly SET hosts = 3 WHERE client_id = 'erin'`);
    c = await check(...jan);
    assert.equal(c.code, 1, c.out);
    assert.match(
      c.out,
      /^client {2}test\.local\/dave {2}2026-01-14T10:00:00Z\.\.2026-01-14T13:00:00Z {2}rollup-raw: rcvb=7 {2}hours: \(somewhere in the window\)$/m,
    );
    assert.match(c.out, /^month {3}test\.local\/erin {2}2026-01 {2}monthly: .*sentb=3200 .*hours: .*sentb=3300 /m);
    assert.match(c.out, /^hosts {3}test\.local\/erin {2}2026-01-14T11:00:00Z {2}hosts=3 host-ids=1$/m);

    // --repair: every finding rewritten, the check after it clean, the invariant back.
    c = await check(...jan, '--repair');
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, /1 clients, 2 months, 1 hours differ \(repaired\)/);
    assert.match(c.out, /after the repair: .*rollup = raw rows/);
    c = await check('--repair');
    assert.equal(c.code, 0, c.out);
    assert.match(c.out, /after the repair: .*rollup = raw rows/);
    assert.deepEqual(await rollupMismatches(pg), []);
    // The repaired call's bytes are in the hour of its last event (the per-hour spread is not in the raw row).
    const dave = await pg.query(
      `SELECT to_char(hour, 'HH24') AS hour, rcvb::int FROM turn_monitor.client_usage_hourly WHERE client_id = 'dave' ORDER BY 1`,
    );
    assert.deepEqual(dave, [{ hour: '12', rcvb: 3000 }]);
    const json = JSON.parse((await check('--format', 'json')).out);
    assert.deepEqual([json.differ, json.months, json.hosts], [[], [], []]);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 90_000 },
);
