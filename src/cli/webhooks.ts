import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { endpointName } from '../config/webhooks.js';
import { OutboxAdmin, type EndpointSummary, type FailedEvent } from '../webhooks/outbox-admin.js';
import { runCli } from './api-client.js';

interface Options {
  config?: string;
  failed?: boolean;
  json?: boolean;
  replay?: string;
  replayFailed?: boolean;
  endpoint?: string;
}

const age = (at: string | null) => {
  if (at === null) return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(at)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
};

function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

function showSummary(rows: EndpointSummary[]): string {
  if (rows.length === 0) return 'no webhook endpoint\n';
  return table(
    ['ENDPOINT', 'PENDING', 'FAILED', 'OLDEST', 'LAST ERROR'],
    rows.map((r) => [
      r.configured ? r.url : `${r.url} (not configured)`,
      String(r.pending),
      String(r.failed),
      age(r.oldestPendingAt),
      r.lastError ?? '-',
    ]),
  );
}

function showFailed(rows: FailedEvent[]): string {
  if (rows.length === 0) return 'no failed webhook event\n';
  return table(
    ['EVENT', 'TYPE', 'ENDPOINT', 'FAILED AT', 'ATTEMPTS', 'ERROR'],
    rows.map((r) => [r.id, r.type, r.endpoint, r.failedAt, String(r.attempts), r.error ?? '-']),
  );
}

async function webhooks(opts: Options): Promise<void> {
  const config = loadConfig(opts.config ?? process.env.TURN_MONITOR_CONFIG);
  const configured = config.webhooks.endpoints.map((e) => endpointName(e.url));
  let only: string | null = null;
  if (opts.endpoint !== undefined) {
    try {
      only = endpointName(opts.endpoint);
    } catch {
      throw new Error('--endpoint must be an endpoint URL');
    }
  }
  const admin = new OutboxAdmin(config.stats.dbFile);
  const out = (text: string) => process.stdout.write(text);
  try {
    if (opts.replay !== undefined || opts.replayFailed) {
      const targets = only === null ? configured : configured.filter((c) => c === only);
      if (targets.length === 0)
        throw new Error(`${only ?? 'no endpoint'} is not among webhooks.endpoints in the config`);
      if (opts.replay !== undefined && !admin.has(opts.replay))
        throw new Error(`no failed event ${opts.replay} in the outbox (delivered events are not kept)`);
      const n = admin.replay({ id: opts.replay, endpoints: targets });
      const result = { queued: n };
      out(
        opts.json
          ? `${JSON.stringify(result)}\n`
          : `${n} failed deliver${n === 1 ? 'y' : 'ies'} queued again (same webhook-id: receivers deduplicate)\n`,
      );
      return;
    }
    if (opts.failed) {
      const rows = admin.failed(only);
      out(opts.json ? `${JSON.stringify(rows)}\n` : showFailed(rows));
      return;
    }
    const rows = admin.summary(configured).filter((r) => only === null || r.url === only);
    out(opts.json ? `${JSON.stringify(rows)}\n` : showSummary(rows));
  } finally {
    admin.close();
  }
}

/**
 * `turn-monitor webhooks`: pending and failed events per endpoint, read from usage.db (also while
 * the monitor is stopped); `--replay ID` / `--replay-failed` queue failed events again.
 */
export function registerWebhooks(program: Command): void {
  program
    .command('webhooks')
    .description('webhook events waiting or failed, per endpoint; --replay ID / --replay-failed send failed ones again')
    .option('-c, --config <file>', 'the monitor config file (default: $TURN_MONITOR_CONFIG)')
    .option('--failed', 'list the failed events')
    .option('--replay <id>', 'queue this failed event again (same webhook-id)')
    .option('--replay-failed', 'queue every failed event again')
    .option('--endpoint <url>', 'only this endpoint')
    .option('--json', 'print JSON')
    .action((opts: Options) => runCli(() => webhooks(opts)));
}
