import assert from 'node:assert/strict';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';
import { runUclient, startPeer, type UclientOptions } from '../harness/services.js';
import {
  monitorRedisPort,
  recordTotals,
  STATS_API_KEY,
  statsConfig,
  STATS_USER as USER,
  usage,
} from '../harness/statsdb.js';
import { byUsername, sqliteHourly, sqliteUnattributedRows } from '../harness/unattributed.js';
import { waitUntil } from '../../src/process/wait.js';

const KEY = STATS_API_KEY;
const auth = { headers: { authorization: `Bearer ${KEY}` } };

harnessTest(
  "real traffic (UDP channels, send indications, TCP, TCP relay): every record equals coturn's own totals",
  async (h) => {
    const peer = await startPeer(h);
    const m = await startMonitor(h, statsConfig);
    const truth = await recordTotals(h, await monitorRedisPort(m));
    const base: UclientOptions = {
      turnPort: m.turnPort,
      peerPort: peer.port,
      ...USER,
      clients: 2,
      messages: 60,
      length: 120,
    };
    const runs: [string, UclientOptions][] = [
      ['udp channels', base],
      ['send indications', { ...base, sendIndications: true }],
      ['tcp to server', { ...base, tcp: true }],
      ['tcp relay', { ...base, tcpRelay: true, clients: 1 }],
    ];
    for (const [label, opts] of runs) {
      const r = await runUclient(h, opts);
      assert.equal(r.code, 0, `${label}: ${r.output.slice(-300)}`);
    }
    // Every allocation coturn deleted (and totalled) must be closed in our db with those totals.
    await waitUntil(
      'every deleted allocation recorded',
      async () => {
        const rows = await usage(m);
        return [...truth.deleted].every((id) => rows.some((r) => r.allocationId === id && r.endReason === 'deleted'));
      },
      15_000,
    );
    const rows = await usage(m);
    let compared = 0;
    for (const row of rows.filter((r) => r.endReason === 'deleted')) {
      const t = truth.totals.get(row.allocationId);
      assert.ok(t?.client && t.peer, `coturn sent totals for ${row.allocationId}`);
      assert.deepEqual([row.rcvp, row.rcvb, row.sentp, row.sentb], t.client, `client counters of ${row.allocationId}`);
      assert.deepEqual(
        [row.peerRcvp, row.peerRcvb, row.peerSentp, row.peerSentb],
        t.peer,
        `peer counters of ${row.allocationId}`,
      );
      assert.equal(row.complete, true);
      assert.equal(row.username, USER.user);
      compared++;
    }
    assert.ok(compared >= 7, `compared ${compared} allocations`);
    assert.ok(
      rows.some((r) => r.transport === 'TCP'),
      'TCP allocations recorded',
    );
    assert.ok(
      rows.some((r) => r.peerSentb > 0),
      'relayed bytes recorded',
    );
    // TCP relay data connections publish under an empty username with no `new`, and no relayed
    // bytes of their own (coturn counts those on the allocation): no rows; summed per hour once closed.
    assert.deepEqual(sqliteUnattributedRows(m), [], 'sessions that never allocated are not allocation rows');
    assert.ok(
      rows.every((r) => r.username !== ''),
      'no unattributed traffic among user allocations',
    );

    // Sessions and users, and the three output formats of the CLI and /usage.
    const sessions = await usage(m, '?by=session');
    assert.ok(sessions.length >= 1 && sessions.every((s) => s.clientId === USER.user));
    assert.ok(sessions.some((s) => s.relayed === true));
    const users = await usage(m, '?by=user');
    assert.equal(users.length, 1);
    assert.equal(
      users[0].rcvb,
      sessions.reduce((a, s) => a + s.rcvb, 0),
    );
    assert.equal((await m.get('/usage')).status, 401, '/usage needs the API key');
    assert.equal((await m.get('/usage?by=nope', auth)).status, 400);
    assert.equal((await m.get('/allocations')).status, 401);
    const cli = (format: string, by = 'allocation') =>
      h.run('cli', process.execPath, [monitorBin, 'usage', '--config', m.configFile, '--by', by, '--format', format]);
    const json = JSON.parse((await cli('json')).output);
    assert.equal(json.length, rows.length);
    assert.deepEqual(Object.keys(json[0]).slice(0, 6), [
      'allocationId',
      'run',
      'realm',
      'username',
      'clientId',
      'transport',
    ]);
    const csv = (await cli('csv', 'session')).output.trim().split('\n');
    assert.match(csv[0], /^realm,clientId,startedAt,endedAt,durationSec,allocations,rcvp,/);
    assert.equal(csv.length, sessions.length + 1);
    const table = (await cli('table', 'user')).output;
    assert.match(table, /^realm\s+clientId\s+sessions/);
    assert.match(table, new RegExp(`\\b${USER.user}\\b`));
    assert.equal((await m.stop()).code, 0);
    // Stopped monitor: the CLI still reads the db; allocations left open were closed at the child's exit.
    const after = JSON.parse((await cli('json')).output);
    assert.ok(after.every((r: any) => r.endedAt !== null && ['deleted', 'child-exit'].includes(r.endReason)));
    const dataConnections = byUsername(sqliteHourly(m)).get('');
    assert.ok(
      dataConnections && dataConnections[0] >= 1 && dataConnections.slice(5).every((v) => v === 0),
      `TCP relay data connections in their hour, with no relayed bytes: ${JSON.stringify(dataConnections)}`,
    );
    assert.equal(m.output().includes(KEY), false);
    assert.equal(path.isAbsolute(m.dataDir), true);
  },
  { timeout: 120_000 },
);
