import type { Command } from 'commander';
import { App } from '../app.js';
import { ConfigError, loadConfig } from '../config/load.js';
import { StartupError } from '../lifecycle.js';
import { createLogger } from '../log/logger.js';

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
  const app = new App(config, logger);

  let signals = 0;
  const shutdown = (signal: string) => {
    if (++signals > 1) {
      log.warn({ event: 'forced-exit', signal }, 'second signal: killing turnserver and exiting without waiting');
      app.forceKill(); // never leave an orphan behind, even in a hurry
      process.exit(1);
    }
    log.info({ event: 'shutdown', signal }, 'shutting down');
    void app.stop().then(() => {
      log.info({ event: 'stopped' }, 'turn-monitor stopped');
      process.exit(0);
    });
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
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
