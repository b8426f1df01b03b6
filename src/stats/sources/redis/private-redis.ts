import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Config } from '../../../config/schema.js';
import type { Logger } from '../../../log/logger.js';
import { ManagedChild } from '../../../process/managed-child.js';
import { isAlive, readCmdline } from '../../../process/pids.js';
import { redisLineLevel } from './redis-log.js';

/** PING over a raw socket: true on +PONG. */
export function redisPing(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (d) => {
      reply += d.toString('latin1');
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
    socket.on('error', () => done(false));
  });
}

/** The pid of our private redis-server from its pidfile, when it still runs (its title no longer names its config). */
function pidfilePid(pidfile: string): number | null {
  try {
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    return pid > 0 && isAlive(pid) && (readCmdline(pid)?.[0] ?? '').includes('redis-server') ? pid : null;
  } catch {
    return null;
  }
}

/**
 * The port of a private redis-server an earlier monitor left running (its process title reads
 * `redis-server 127.0.0.1:PORT`), so this monitor adopts it on the same port; null when none runs.
 */
export function runningPrivateRedisPort(config: Config): number | null {
  const pid = pidfilePid(path.join(config.dataDir, 'redis.pid'));
  const m = pid === null ? null : /:(\d+)\b/.exec(readCmdline(pid)?.[0] ?? '');
  return m ? Number(m[1]) : null;
}

/**
 * The monitor's own redis-server for coturn's redis-statsdb (one Redis per TURN host): loopback
 * only, no persistence, a pub/sub output buffer large enough that a busy host never gets its
 * subscriber dropped. Supervised like turnserver: restarted restartDelayMs after a crash, on the same port.
 */
export function createPrivateRedis(config: Config, logger: Logger, port: number): ManagedChild {
  const pidfile = path.join(config.dataDir, 'redis.pid');
  const log = logger.child({ component: 'redis' });
  const t = config.turnserver;
  return new ManagedChild({
    name: 'redis',
    logger: logger.child({ component: 'redis-supervisor' }),
    spawnSpec: async () => ({
      file: config.redis.bin,
      args: [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--protected-mode',
        'yes',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        config.dataDir,
        '--pidfile',
        pidfile,
        '--client-output-buffer-limit',
        'pubsub 1gb 512mb 120',
        '--loglevel',
        'notice',
      ],
      cwd: config.dataDir,
    }),
    probe: (timeoutMs = t.probeTimeoutMs) => redisPing(port, timeoutMs),
    findOrphans: () => {
      const pid = pidfilePid(pidfile);
      return pid === null ? [] : [pid];
    },
    // One left by an earlier monitor that answers PING serves on: turnserver keeps publishing to it.
    adopt: true,
    onLine: (line) => {
      if (!line.trim()) return;
      const { level, text } = redisLineLevel(line);
      log[level](text);
    },
    restartDelayMs: t.restartDelayMs,
    maxRestartDelayMs: t.maxRestartDelayMs,
    stopTimeoutMs: t.stopTimeoutMs,
    probeIntervalMs: t.probeIntervalMs,
    readyTimeoutMs: t.readyTimeoutMs,
  });
}
