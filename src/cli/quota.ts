import type { Command } from 'commander';
import { ApiClient, runCli } from './api-client.js';

const mb = (n: number) => `${(n / 1e6).toFixed(n < 1e7 ? 2 : 0)} MB`;

/** `turn-monitor quota CLIENT`: a client's usage against its quota in the current period. */
export function registerQuota(program: Command): void {
  program
    .command('quota <clientId>')
    .description("a client's relayed bytes in the current period, its quota and state (ok, warned, exceeded)")
    .option('-c, --config <file>', 'the monitor config file (default: $TURN_MONITOR_CONFIG)')
    .option('--json', 'print JSON')
    .action((clientId: string, opts: { config?: string; json?: boolean }) =>
      runCli(async () => {
        const api = ApiClient.fromConfigFile(opts.config);
        const r = await api.request('GET', `/clients/${encodeURIComponent(clientId)}/quota`);
        if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body?.error ?? 'request failed'}`);
        const q = r.body as {
          period: string;
          periodStart: string;
          periodEnd: string;
          usedBytes: number;
          quotaBytes: number | null;
          state: string;
        };
        if (opts.json) {
          process.stdout.write(`${JSON.stringify(q)}\n`);
          return;
        }
        const share = q.quotaBytes ? ` (${Math.round((100 * q.usedBytes) / q.quotaBytes)} %)` : '';
        process.stdout.write(
          [
            `client   ${clientId}`,
            `period   ${q.period} ${q.periodStart} – ${q.periodEnd}`,
            `used     ${q.usedBytes} bytes (${mb(q.usedBytes)})${share}`,
            `quota    ${q.quotaBytes === null ? 'none' : `${q.quotaBytes} bytes (${mb(q.quotaBytes)})`}`,
            `state    ${q.state}`,
          ].join('\n') + '\n',
        );
      }),
    );
}
