import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { repoRoot, testConfig } from '../harness/monitor.js';
import { processesMentioning } from '../../src/process/pids.js';
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
