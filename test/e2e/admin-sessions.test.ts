import assert from 'node:assert/strict';
import { harnessTest } from '../harness/harness.js';
import { cliAccess, coturnSessions } from '../harness/coturn-cli.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';
import { runUclient, spawnUclient, startPeer } from '../harness/services.js';
import {
  monitorRedisPort,
  recordTotals,
  STATS_API_KEY,
  statsConfig,
  STATS_USER as USER,
  usage,
} from '../harness/statsdb.js';
import { freePortRange } from '../../src/process/ports.js';
import { waitUntil } from '../../src/process/wait.js';
import { readdirSync, readFileSync } from 'node:fs';

/** 'T' when every thread of the process is stopped (SIGSTOP), else the first running thread's state. */
function procState(pid: number): string {
  const states = readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  });
  return states.find((st) => st !== 'T' && st !== 't') ?? 'T';
}

const auth = { headers: { authorization: `Bearer ${STATS_API_KEY}` } };

harnessTest(
  "/sessions lists exactly what coturn has (past 256), with the model's counters; disconnect ends a live relay with exact totals; a wedged CLI is 503",
  async (h) => {
    const peer = await startPeer(h);
    // Room for ~600 allocations at the peak (uclient reserves port pairs).
    const [minPort, maxPort] = await freePortRange(1500);
    const m = await startMonitor(h, { ...statsConfig, turnserver: { ...statsConfig.turnserver, minPort, maxPort } });
    const truth = await recordTotals(h, await monitorRedisPort(m));
    await waitUntil(
      'admin channel connected',
      async () => (await m.health()).body.turnserver.admin === 'connected',
      5000,
    );
    assert.equal((await m.get('/sessions')).status, 401, 'needs the API key');

    // Each uclient client leaves its probe allocation alive: 8 × 35 live allocations (uclient
    // connects its clients one after another, so several processes in parallel are faster).
    const runs = await Promise.all(
      // Each from its own loopback source address: parallel uclients otherwise reuse each other's 5-tuples.
      Array.from({ length: 8 }, (_, i) =>
        runUclient(h, {
          turnPort: m.turnPort,
          peerPort: peer.port,
          ...USER,
          clients: 36,
          messages: 1,
          length: 50,
          timeoutMs: 40_000,
          extraArgs: ['-L', `127.0.0.${i + 2}`],
        }),
      ),
    );
    for (const r of runs) assert.equal(r.code, 0, r.output.slice(-300));
    // Freed allocations take a moment to go: compare once coturn's own listing is the same before and after ours.
    let own = await coturnSessions(m);
    let listed: any[] = [];
    let model: any[] = [];
    const same = (a: Iterable<string>, b: Set<string>) => [...a].length === b.size && [...a].every((id) => b.has(id));
    await waitUntil(
      "/sessions = coturn's ps, and the model has every allocation",
      async () => {
        const before = await coturnSessions(m);
        listed = (await m.get('/sessions', auth)).body as any[];
        own = await coturnSessions(m);
        const ids = new Set(own.ids.keys());
        model = (await m.get('/allocations', auth)).body as any[];
        const opened = model.map((a: { allocationId: string }) => a.allocationId);
        return (
          same(before.ids.keys(), ids) &&
          same(
            listed.map((x) => x.allocationId),
            ids,
          ) &&
          [...ids].every((id) => opened.includes(id))
        );
      },
      15_000,
      250,
    );
    assert.ok(own.total > 256, `coturn holds ${own.total} allocations`);
    assert.equal(own.ids.size, own.total, "the test's own ps lists every session");
    assert.equal(listed.length, own.total);
    // The model as it was in the same look as `listed`: a later one may have lost a freed allocation.
    const open = new Map(model.map((a) => [a.allocationId, a]));
    for (const s of listed) {
      assert.equal(s.username, USER.user);
      assert.equal(s.clientId, USER.user);
      assert.equal(s.clientProtocol, 'UDP');
      assert.match(s.relayAddr, /^127\.0\.0\.1:\d+$/);
      assert.ok(s.rate && s.coturnUsage && Array.isArray(s.peers));
      const a = open.get(s.allocationId);
      assert.deepEqual(
        [s.counters.rcvb, s.counters.sentb, s.counters.peerSentb],
        [a.rcvb, a.sentb, a.peerSentb],
        "the model's counters",
      );
    }
    // Every session is USER's, so ?user= lists them all: compared with listings just before and
    // after it, as freed allocations may still be leaving coturn one by one.
    let filtered: { body: any[] } = { body: [] };
    let around: number[] = [];
    await waitUntil(
      '?user= lists every session',
      async () => {
        const before = ((await m.get('/sessions', auth)).body as any[]).length;
        filtered = await m.get(`/sessions?user=${USER.user}`, auth);
        around = [before, ((await m.get('/sessions', auth)).body as any[]).length];
        return around[0] === around[1] && filtered.body.length === around[0];
      },
      15_000,
      250,
    ).catch(() => undefined);
    assert.equal(filtered.body.length, around[1]);
    assert.ok(filtered.body.every((x) => x.username === USER.user));
    assert.equal((await m.get('/sessions?clientId=nobody', auth)).body.length, 0);
    assert.equal((await m.get('/sessions?clientId=a%25b', auth)).status, 400, 'malformed client id');

    const cli = (...args: string[]) =>
      h.run('cli', process.execPath, [monitorBin, 'sessions', '--config', m.configFile, ...args]);
    const json = JSON.parse((await cli('--json', '--client', USER.user)).output) as unknown[];
    assert.ok(json.length >= 256, 'turn-monitor sessions --json');
    const table = (await cli()).output.trim().split('\n');
    assert.match(table[0], /^ALLOCATION\s+CLIENT\s+TRANSPORT\s+AGE\s+RELAY\s+PEERS\s+BYTES IN\s+BYTES OUT$/);
    assert.ok(table.length > 256);

    // A live relay: a long uclient run; disconnect its relaying allocation (the one with a peer).
    const long = spawnUclient(
      h,
      { turnPort: m.turnPort, peerPort: peer.port, ...USER, messages: 3000, length: 100 },
      'uclient-long',
    );
    let target: string | null = null;
    const started = Date.now();
    await waitUntil(
      'the long relay is live',
      async () => {
        const now = (await m.get('/sessions', auth)).body as any[];
        target = now.find((s) => !own.ids.has(s.allocationId) && s.peers.length > 0)?.allocationId ?? null;
        return target !== null;
      },
      15_000,
    );
    // Let it relay for a moment, so the cut allocation has traffic to account.
    await waitUntil('some traffic relayed', () => Date.now() - started > 1000 || long.child.exitCode !== null, 3000);
    const t0 = Date.now();
    const d = await m.get(`/sessions/${target}/disconnect`, { ...auth, method: 'POST' });
    assert.equal(d.status, 200, d.text);
    await waitUntil('gone from coturn', async () => !(await coturnSessions(m)).ids.has(target!), 2000);
    const cutMs = Date.now() - t0;
    assert.equal(long.child.exitCode, null, 'the client was still sending when its relay was cut');
    await waitUntil(
      'record closed as disconnected',
      async () => (await usage(m)).some((r) => r.allocationId === target && r.endReason === 'disconnected'),
      10_000,
    );
    const row = (await usage(m)).find((r) => r.allocationId === target);
    const t = truth.totals.get(target!);
    assert.ok(t?.client && t.peer, 'coturn sent totals for the cancelled allocation');
    assert.deepEqual([row.rcvp, row.rcvb, row.sentp, row.sentb], t.client, "client totals are coturn's");
    assert.deepEqual([row.peerRcvp, row.peerRcvb, row.peerSentp, row.peerSentb], t.peer, "peer totals are coturn's");
    assert.equal(row.complete, true);
    h.onCleanup(async () => void long.child.kill('SIGKILL'));
    assert.equal((await m.get('/sessions/999999999999999999/disconnect', { ...auth, method: 'POST' })).status, 404);
    assert.equal((await m.get('/sessions/not-an-id/disconnect', { ...auth, method: 'POST' })).status, 404);

    // A wedged CLI (turnserver stopped): 503 with Retry-After within the command deadline, never a hang.
    const { password } = cliAccess(m);
    const pid = (await m.health()).body.turnserver.pid as number;
    process.kill(pid, 'SIGSTOP');
    // Signal delivery is asynchronous: ask only once the kernel shows every thread stopped.
    await waitUntil('turnserver stopped', () => procState(pid) === 'T', 3000);
    const s0 = Date.now();
    const wedged = await fetch(`${m.httpUrl}/sessions`, auth);
    process.kill(pid, 'SIGCONT');
    assert.equal(wedged.status, 503);
    assert.equal(wedged.headers.get('retry-after'), '3');
    assert.equal(((await wedged.json()) as { code: string }).code, 'admin_unavailable');
    assert.ok(Date.now() - s0 < 4500, `answered in ${Date.now() - s0} ms`);
    const metrics = (await m.get('/metrics')).text;
    assert.match(metrics, /turn_monitor_disconnects_total\{reason="disconnected"\} 1/);
    assert.match(metrics, /turn_monitor_admin_commands_total\{command="ps",result="ok"\}/);
    const healthText = (await m.get('/health')).text;
    assert.equal((await m.stop()).code, 0);
    for (const text of [m.output(), metrics, healthText])
      assert.equal(text.includes(password), false, 'the CLI password never shows');
    console.log(`disconnect → gone from coturn in ${cutMs} ms`);
  },
  { timeout: 120_000 },
);
