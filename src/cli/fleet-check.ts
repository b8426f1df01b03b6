import type { Command } from 'commander';
import pg from 'pg';
import { loadConfig } from '../config/load.js';
import { fleetCheck, type CheckReport } from '../export/fleet-check.js';
import { describePgError, secretsOf } from '../export/pg-url.js';
import { parseFilter } from '../stats/query.js';
import { runCli } from './api-client.js';

interface Options {
  config?: string;
  from?: string;
  to?: string;
  repair?: boolean;
  format: string;
}

/** Without --from: the last 7 days. */
const DEFAULT_DAYS = 7;

const counters = (s: Record<string, number>) =>
  Object.entries(s)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

/** One line per finding, then a summary line. */
export function renderCheck(r: CheckReport, label = ''): string {
  const lines: string[] = [];
  const who = (realm: string | null, clientId: string) => `${realm ?? '-'}/${clientId}`;
  for (const d of r.differ) {
    const diff = Object.fromEntries(
      Object.keys(d.raw)
        .filter((k) => d.rollup[k] !== d.raw[k])
        .map((k) => [k, d.rollup[k] - d.raw[k]]),
    );
    lines.push(
      `client  ${who(d.realm, d.clientId)}  ${d.from}..${d.to}  rollup-raw: ${counters(diff)}  hours: ${d.hours.length > 0 ? d.hours.join(',') : '(somewhere in the window)'}`,
    );
  }
  for (const m of r.months)
    lines.push(
      `month   ${who(m.realm, m.clientId)}  ${m.month}  monthly: ${m.monthly ? counters(m.monthly) : '(none)'}  hours: ${m.hours ? counters(m.hours) : '(none)'}`,
    );
  for (const x of r.hosts)
    lines.push(`hosts   ${who(x.realm, x.clientId)}  ${x.hour}  hosts=${x.hosts} host-ids=${x.hostIds}`);
  const n = r.differ.length + r.months.length + r.hosts.length;
  lines.push(
    `${label}${r.from}..${r.to}: ${r.clients} clients checked, ${n === 0 ? 'rollup = raw rows' : `${r.differ.length} clients, ${r.months.length} months, ${r.hosts.length} hours differ${r.repaired ? ' (repaired)' : ''}`}`,
  );
  return lines.join('\n') + '\n';
}

/**
 * `turn-monitor fleet-check`: compare the billing rollup with the raw rows over a window (see
 * src/export/fleet-check.ts for what is compared); `--repair` rewrites what differs, then checks
 * again. Exit 0 when they agree (after the repair, if asked), 1 when they differ.
 */
export function registerFleetCheck(program: Command): void {
  program
    .command('fleet-check')
    .description('compare the fleet billing rollup in PostgreSQL with the raw allocation rows over a window')
    .option('-c, --config <file>', 'the monitor config file (default: $TURN_MONITOR_CONFIG)')
    .option('--from <iso>', `window start (default: ${DEFAULT_DAYS} days ago)`)
    .option('--to <iso>', 'window end (default: now)')
    .option('--repair', 'rewrite the differing clients, hours and months from the raw rows')
    .option('--format <format>', 'table | json', 'table')
    .action((opts: Options) =>
      runCli(async () => {
        if (!['table', 'json'].includes(opts.format)) throw new Error('--format must be table or json');
        const f = parseFilter(opts);
        const config = loadConfig(opts.config ?? process.env.TURN_MONITOR_CONFIG);
        const { url } = config.export.postgres;
        if (url === null) throw new Error('fleet-check needs export.postgres.url in the config');
        const to = f.to ?? Date.now();
        const from = f.from ?? to - DEFAULT_DAYS * 86_400_000;
        const secrets = secretsOf(url);
        let client: pg.Client;
        try {
          // pg reads sslrootcert & co. when the client is made: inside the try, so errors name them.
          client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
          client.on('error', () => undefined);
          await client.connect();
        } catch (err) {
          throw new Error(describePgError(err, secrets, url));
        }
        try {
          const report = await fleetCheck(client, { from, to, repair: opts.repair ?? false });
          const after = report.repaired ? await fleetCheck(client, { from, to, repair: false }) : null;
          if (opts.format === 'json')
            process.stdout.write(`${JSON.stringify(after ? { ...report, after } : report)}\n`);
          else process.stdout.write(renderCheck(report) + (after ? renderCheck(after, 'after the repair: ') : ''));
          const left = after ?? report;
          process.exitCode = left.differ.length + left.months.length + left.hosts.length === 0 ? 0 : 1;
        } catch (err) {
          const e = err as { code?: string };
          throw new Error(e.code ? describePgError(err, secrets, url) : (err as Error).message);
        } finally {
          await client.end().catch(() => undefined);
        }
      }),
    );
}
