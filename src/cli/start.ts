import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { App } from '../app.js';
import { ConfigError, configWarnings, loadConfig } from '../config/load.js';
import { StartupError } from '../lifecycle.js';
import { createLogger } from '../log/logger.js';

/** The signal that asks a running monitor for a handover (SIGUSR1 is Node's inspector). */
export const HANDOVER_SIGNAL = 'SIGUSR2';

/** The running monitor's pid, for `turn-monitor restart`. */
export function monitorPidfile(dataDir: string): string {
  return path.join(dataDir, 'turn-monitor.pid');
}

/** `turn-monitor start`: run every subsystem until SIGINT/SIGTERM. */
export async function runStart(configFile: string | undefined): Promise<number> {
  let config;
  try {
    config = loadConfig(configFile);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`turn-monitor: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const log = logger.child({ component: 'main' });
  for (const warning of configWarnings(config))
    logger.child({ component: 'config' }).warn({ event: 'secret-file-mode' }, warning);
  const app = new App(config, logger);

  let signals = 0;
  let up = false;
  const stopAndExit = () =>
    void app.stop().then(() => {
      log.info({ event: 'stopped' }, 'turn-monitor stopped');
      process.exit(0);
    });
  // A drain that ends in 'stop' (signal, POST /drain, `turn-monitor drain`) stops the monitor.
  app.drain.on('finished', (outcome) => {
    if (outcome.then === 'stop' && !outcome.aborted) stopAndExit();
  });
  const shutdown = (signal: string) => {
    if (++signals > 1) {
      log.warn({ event: 'forced-exit', signal }, 'second signal: killing turnserver and exiting without waiting');
      app.forceKill(); // never leave an orphan behind, even in a hurry
      process.exit(1);
    }
    const { drainTimeoutSec } = config.lifecycle;
    if (up && drainTimeoutSec > 0 && !app.drain.draining) {
      log.info(
        { event: 'shutdown', signal, drainTimeoutSec },
        'draining, then shutting down (a second signal stops at once)',
      );
      void app.drain.run(drainTimeoutSec, 'stop');
      return;
    }
    log.info({ event: 'shutdown', signal }, 'shutting down');
    stopAndExit();
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  // Handover (`turn-monitor restart`, `pm2 sendSignal SIGUSR2 turn-monitor`): this monitor exits 0
  // and leaves turnserver and the private Redis serving; the next one (pm2 starts it) adopts them.
  process.on(HANDOVER_SIGNAL, () => {
    if (++signals > 1) return shutdown(HANDOVER_SIGNAL);
    log.info(
      { event: 'handover', signal: HANDOVER_SIGNAL },
      'handover: stopping the monitor, leaving turnserver serving',
    );
    void app.handover().then(() => {
      log.info({ event: 'handed-over' }, 'turn-monitor stopped; turnserver left serving for the next monitor');
      process.exit(0);
    });
  });
  const pidfile = monitorPidfile(config.dataDir);
  mkdirSync(config.dataDir, { recursive: true });
  writeFileSync(pidfile, `${process.pid}\n`);
  process.on('exit', () => rmSync(pidfile, { force: true }));
  process.on('uncaughtException', (err) => {
    log.fatal({ event: 'uncaught', err: err.message, stack: err.stack }, 'uncaught exception: stopping');
    void app.stop().finally(() => process.exit(1));
  });

  try {
    await app.start();
  } catch (err) {
    const message = (err as Error).message;
    log.fatal({ event: 'startup-failed', err: message }, `start-up failed: ${message}`);
    process.stderr.write(`turn-monitor: start-up failed: ${message}\n`);
    return err instanceof StartupError ? err.exitCode : 1;
  }
  if (signals > 0) return new Promise(() => undefined); // shutdown() exits
  up = true;
  const where = app.whereabouts();
  log.info(
    { event: 'started', ...where, http: app.http.address },
    `turn-monitor is up: HTTP ${where.http}, turnserver ${where.turnserver}, data ${where.dataDir}, usage from ${where.usageSource}, discovery ${where.discovery}`,
  );
  // pm2 (wait_ready) waits for this message before it counts the app online.
  process.send?.('ready');
  return new Promise(() => undefined); // runs until a signal
}

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run the monitor: turnserver, credentials, stats, discovery and the HTTP API')
    .option('-c, --config <file>', 'JSON config file (default: $TURN_MONITOR_CONFIG, else built-in defaults)')
    .action(async (opts: { config?: string }) => {
      process.exitCode = await runStart(opts.config ?? process.env.TURN_MONITOR_CONFIG);
    });
}
