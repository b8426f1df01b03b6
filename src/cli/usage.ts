import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { formatUsage, parseFilter, type UsageView } from '../stats/query.js';
import { UsageReader } from '../stats/reader.js';
import type { UsageFormat } from '../stats/usage/usage-format.js';
import { runCli } from './api-client.js';
import { queryFleetUsage } from '../export/fleet-reader.js';

interface Options {
  config?: string;
  by: string;
  user?: string;
  from?: string;
  to?: string;
  format: string;
  fleet?: boolean;
  host?: string;
}

/** Write to stdout at the pace of whatever reads it (a pipe into less, a file). */
function writeStdout(text: string): Promise<void> | void {
  if (process.stdout.write(text)) return;
  return new Promise((resolve) => process.stdout.once('drain', resolve));
}

/**
 * `turn-monitor usage`: reads the usage db directly, so it works while the monitor is stopped;
 * `--fleet` reads every host's records from PostgreSQL instead.
 */
export function registerUsage(program: Command): void {
  program
    .command('usage')
    .description('relayed usage per allocation, session or user, from the usage database')
    .option('-c, --config <file>', 'the monitor config file (default: $TURN_MONITOR_CONFIG)')
    .option('--by <view>', 'allocation | session | user | unattributed', 'allocation')
    .option('--user <id>', 'only this client id (or full username)')
    .option('--from <iso>', 'only usage live at or after this time (with --fleet: default 24 hours before --to)')
    .option('--to <iso>', 'only usage that started before this time (with --fleet: default now)')
    .option('--format <format>', 'table | json | csv', 'table')
    .option(
      '--fleet',
      "every host's usage, from PostgreSQL (export.postgres.url in the config); --by user reads the hourly billing rollup",
    )
    .option('--host <id>', 'with --fleet: only this host id')
    .action((opts: Options) =>
      runCli(async () => {
        if (!['allocation', 'session', 'user', 'unattributed'].includes(opts.by))
          throw new Error('--by must be allocation, session, user or unattributed');
        if (!['table', 'json', 'csv'].includes(opts.format)) throw new Error('--format must be table, json or csv');
        const filter = parseFilter(opts);
        const config = loadConfig(opts.config ?? process.env.TURN_MONITOR_CONFIG);
        if (opts.host !== undefined && !opts.fleet) throw new Error('--host needs --fleet');
        if (opts.fleet) {
          const { url } = config.export.postgres;
          if (url === null) throw new Error('--fleet needs export.postgres.url in the config');
          const rows = await queryFleetUsage(url, opts.by as UsageView, { ...filter, hostId: opts.host });
          process.stdout.write(formatUsage(rows, opts.format as 'table' | 'json' | 'csv'));
          return;
        }
        let reader: UsageReader;
        try {
          reader = new UsageReader(config.stats.dbFile);
        } catch (err) {
          throw new Error(`cannot open the usage database ${config.stats.dbFile}: ${(err as Error).message}`);
        }
        try {
          await reader.stream(opts.by as UsageView, filter, opts.format as UsageFormat, writeStdout);
        } finally {
          reader.close();
        }
      }),
    );
}
