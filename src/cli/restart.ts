import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, loadConfig } from '../config/load.js';
import { cmdlineText, isAlive, waitForPidExit } from '../process/pids.js';
import { waitUntil } from '../process/wait.js';
import { ApiClient } from './api-client.js';
import { HANDOVER_SIGNAL, monitorPidfile } from './start.js';

/**
 * `turn-monitor restart`: a handover. The running monitor (found by its pidfile in dataDir) gets
 * SIGUSR2, stops its own parts and exits 0, leaving turnserver and the private Redis serving;
 * pm2 starts the monitor again and the new one adopts them. Waits for the new one to be healthy.
 */
export async function runRestart(configFile: string | undefined, timeoutSec: number): Promise<number> {
  let config;
  try {
    config = loadConfig(configFile ?? process.env.TURN_MONITOR_CONFIG);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`turn-monitor: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  let pid = 0;
  try {
    pid = Number(readFileSync(monitorPidfile(config.dataDir), 'utf8').trim());
  } catch {
    /* none */
  }
  if (!(pid > 0 && isAlive(pid) && cmdlineText(pid).includes('turn-monitor'))) {
    process.stderr.write(
      'turn-monitor: no running monitor for this config (no live pid in dataDir/turn-monitor.pid)\n',
    );
    return 1;
  }
  process.kill(pid, HANDOVER_SIGNAL);
  if (!(await waitForPidExit(pid, timeoutSec * 1000))) {
    process.stderr.write(`turn-monitor: monitor ${pid} did not exit within ${timeoutSec} s\n`);
    return 1;
  }
  process.stdout.write(`monitor ${pid} handed over; turnserver left serving\n`);
  const api = new ApiClient(config);
  try {
    await waitUntil(
      'a new monitor answering /health',
      async () => {
        const h = await api.request('GET', '/health');
        return h.status === 200 && (h.body as { turnserver?: { adopted?: boolean } }).turnserver?.adopted === true;
      },
      timeoutSec * 1000,
      200,
    );
  } catch {
    process.stderr.write(
      `turn-monitor: no new monitor adopted turnserver within ${timeoutSec} s (is it run by pm2?)\n`,
    );
    return 1;
  }
  process.stdout.write('new monitor up: it adopted the running turnserver\n');
  return 0;
}

export function registerRestart(program: Command): void {
  program
    .command('restart')
    .description('restart the monitor without touching turnserver (handover; pm2 starts the new one, which adopts it)')
    .option('-c, --config <file>', 'JSON config file (default: $TURN_MONITOR_CONFIG)')
    .option('--timeout <sec>', 'how long to wait for the old monitor to exit and the new one to be up', '30')
    .action(async (opts: { config?: string; timeout: string }) => {
      process.exitCode = await runRestart(opts.config, Number(opts.timeout));
    });
}
