// pm2 process file: `pm2 start ecosystem.config.js`. The package is ESM, so this file exports
// `apps` as an ES module binding (pm2 requires it; Node 20.19+ loads ESM through require).
// turn-monitor sends 'ready' to pm2 once turnserver answers STUN and every subsystem is up.
import { readFileSync } from 'node:fs';

// pm2 runs the launcher through `node`, which ignores its shebang: pass the environment
// (NAME=value before `node`) and the flags that line gives.
const shebang = readFileSync(new URL('./bin/turn-monitor', import.meta.url), 'utf8').split('\n')[0];
const words = shebang.replace(/^#!\S*env -S\s*/, '').split(/\s+/);
const nodeAt = words.indexOf('node');
const launcherEnv = Object.fromEntries(words.slice(0, nodeAt).map((w) => w.split('=', 2)));
const nodeArgs = words.slice(nodeAt + 1).filter((a) => a.startsWith('--'));

export const apps = [
  {
    name: 'turn-monitor',
    script: 'bin/turn-monitor',
    args: ['start', '--config', process.env.TURN_MONITOR_CONFIG || 'config/local.json'],
    interpreter: 'node',
    node_args: nodeArgs,
    env: launcherEnv,
    exec_mode: 'fork',
    instances: 1,
    // Start-up waits for turnserver's first STUN answer (up to readyTimeoutMs, 10 s by default).
    wait_ready: true,
    listen_timeout: 20000,
    // Our own shutdown: a drain of at most lifecycle.drainTimeoutSec (10 s, plus up to 5 s for
    // cancelled allocations' totals), then withdraw from ZooKeeper (discovery.drainMs 1 s), stop
    // HTTP, SIGTERM turnserver (SIGKILL after stopTimeoutMs = 5 s), flush usage. pm2 must wait
    // longer than that before it SIGKILLs us.
    kill_timeout: 25000,
    // pm2 must signal only us: we stop turnserver ourselves, after leaving discovery.
    treekill: false,
    // A monitor that cannot start (bad config exits 2) must not spin: a few tries, then stop.
    autorestart: true,
    max_restarts: 10,
    min_uptime: 10000,
    restart_delay: 3000,
    exp_backoff_restart_delay: 1000,
    stop_exit_codes: [2],
    merge_logs: true,
    time: false,
  },
];
