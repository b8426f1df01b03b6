import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { monitorBin, repoRoot, testConfig, type MonitorProcess } from '../harness/monitor.js';
import { assertExactTotals, withTruth } from '../harness/relay.js';
import { runUclient, startPeer } from '../harness/services.js';
import { STATS_API_KEY, STATS_USER as USER, usage } from '../harness/statsdb.js';
import { isAlive, processesMentioning } from '../../src/process/pids.js';
import { waitUntil } from '../../src/process/wait.js';

const pm2Bin = path.join(repoRoot, 'node_modules', '.bin', 'pm2');

harnessTest(
  'under pm2 (own PM2_HOME): online once ready, serving, everything gone after pm2 kill',
  async (h) => {
    const config = await testConfig(h);
    const configFile = path.join(h.dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const env = { ...process.env, PM2_HOME: path.join(h.dir, 'pm2'), TURN_MONITOR_CONFIG: configFile };
    const pm2 = (...args: string[]) => h.run('pm2', pm2Bin, args, { env, cwd: repoRoot, timeoutMs: 60_000 });
    let killed = false;
    h.onCleanup(async () => {
      if (!killed) await pm2('kill');
    });

    // wait_ready: `pm2 start` returns once the monitor sent 'ready' (turnserver answers STUN).
    const started = await pm2('start', 'ecosystem.config.js');
    assert.equal(started.code, 0, started.output);
    const list = JSON.parse((await pm2('jlist')).output.trim().split('\n').pop() as string);
    assert.equal(list.length, 1);
    assert.equal(list[0].pm2_env.status, 'online');
    assert.equal(list[0].pm2_env.restart_time, 0);
    // The launcher's environment (its shebang) reaches the monitor under pm2 too.
    const environ = readFileSync(`/proc/${list[0].pid as number}/environ`, 'utf8').split('\0');
    assert.ok(environ.includes('MALLOC_ARENA_MAX=2'), 'MALLOC_ARENA_MAX from the launcher');
    const http = config.http as { host: string; port: number };
    const health = await fetch(`http://${http.host}:${http.port}/health`);
    assert.equal(health.status, 200);
    const body = (await health.json()) as { turnserver: { pid: number } };
    assert.ok(body.turnserver.pid > 0);

    const kill = await pm2('kill');
    killed = true;
    assert.equal(kill.code, 0);
    await waitUntil('monitor and turnserver gone', () => processesMentioning(h.dir).length === 0, 15_000);
  },
  { timeout: 120_000 },
);

harnessTest(
  'under pm2: kill -9 of the monitor and `turn-monitor restart` during a relay: the same turnserver serves throughout, totals exact, none closed as monitor-restart',
  async (h) => {
    const peer = await startPeer(h);
    const { config: truthConfig, truth } = await withTruth(h);
    const config = await testConfig(h, truthConfig);
    const configFile = path.join(h.dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const env = { ...process.env, PM2_HOME: path.join(h.dir, 'pm2'), TURN_MONITOR_CONFIG: configFile };
    const pm2 = (...args: string[]) => h.run('pm2', pm2Bin, args, { env, cwd: repoRoot, timeoutMs: 60_000 });
    h.onCleanup(async () => void (await pm2('kill')));
    assert.equal((await pm2('start', 'ecosystem.config.js')).code, 0);
    const http = config.http as { host: string; port: number };
    const turnPort = (config.turnserver as { listeningPort: number }).listeningPort;
    const api = {
      async get(p: string, init: RequestInit = {}) {
        const res = await fetch(`http://${http.host}:${http.port}${p}`, {
          ...init,
          headers: { authorization: `Bearer ${STATS_API_KEY}` },
        });
        const text = await res.text();
        return {
          status: res.status,
          text,
          body: text.startsWith('{') || text.startsWith('[') ? JSON.parse(text) : null,
        };
      },
    } as unknown as MonitorProcess;
    const health = async () => (await api.get('/health')).body;
    const turnPid = (await health()).turnserver.pid as number;
    const monitorPid = () => Number(readFileSync(path.join(config.dataDir as string, 'turn-monitor.pid'), 'utf8'));
    const first = monitorPid();

    const relay = runUclient(h, {
      turnPort,
      peerPort: peer.port,
      ...USER,
      clients: 2,
      messages: 1400,
      length: 100,
      extraArgs: ['-z', '5'],
    });
    await waitUntil(
      'allocations open and checkpointed',
      async () => (await usage(api)).filter((r) => r.endedAt === null).length >= 4,
      15_000,
    ); // each client: a probe allocation, then the relaying one
    const openAtKill = (await usage(api)).filter((r) => r.endedAt === null).map((r) => r.allocationId as string);
    process.kill(first, 'SIGKILL');
    await waitUntil(
      'pm2 started a new monitor that adopted turnserver',
      async () => {
        const b = await health().catch(() => null);
        return b?.turnserver?.adopted === true && monitorPid() !== first;
      },
      20_000,
      100,
    );
    const second = monitorPid();
    const restart = await h.run('restart', process.execPath, [monitorBin, 'restart', '--config', configFile], {
      env,
      timeoutMs: 40_000,
    });
    assert.equal(restart.code, 0, restart.output);
    assert.notEqual(monitorPid(), second, 'a third monitor runs');
    const after = await health();
    assert.equal(after.turnserver.pid, turnPid, 'the same turnserver throughout');
    assert.equal(after.turnserver.adopted, true);
    const done = await relay;
    assert.equal(done.code, 0);
    assert.equal(done.lostPackets, 0);
    const spanning = () => openAtKill.filter((id) => truth.deleted.has(id));
    await assertExactTotals(api, truth, assert.deepEqual, () => spanning().length >= 2);
    assert.equal((await usage(api)).filter((r) => r.endReason === 'monitor-restart').length, 0);
    const list = JSON.parse((await pm2('jlist')).output.trim().split('\n').pop() as string);
    assert.equal(list[0].pm2_env.restart_time, 2);

    assert.equal((await pm2('kill')).code, 0);
    await waitUntil(
      'monitor and turnserver gone',
      () => processesMentioning(h.dir).length === 0 && !isAlive(turnPid),
      15_000,
    );
  },
  { timeout: 120_000 },
);
