import type { Command } from 'commander';
import type { SessionView } from '../control/session-control.js';
import { ApiClient, runCli } from './api-client.js';

interface SessionsOptions {
  config?: string;
  user?: string;
  client?: string;
  json?: boolean;
}

function age(startedAt: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(startedAt)) / 1000));
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m${s % 60}s`
      : `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
}

/** Live sessions as a plain-text table: one line per allocation. */
export function renderSessions(sessions: SessionView[], now = Date.now()): string {
  const head = ['ALLOCATION', 'CLIENT', 'TRANSPORT', 'AGE', 'RELAY', 'PEERS', 'BYTES IN', 'BYTES OUT'];
  const rows = sessions.map((s) => [
    s.allocationId,
    s.clientId,
    `${s.clientProtocol ?? '?'}/${s.relayProtocol ?? '?'}`,
    age(s.startedAt, now),
    s.relayAddr ?? '-',
    String(s.peers.length),
    String(s.counters?.rcvb ?? s.coturnUsage?.rb ?? 0),
    String(s.counters?.sentb ?? s.coturnUsage?.sb ?? 0),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i >= 5 ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n') + '\n';
}

const fail = (what: string, r: { status: number; body: { error?: string } }) =>
  new Error(`${what}: HTTP ${r.status} ${r.body?.error ?? ''}`.trim());

/** `turn-monitor sessions` and `turn-monitor revoke`: live control through the running monitor's API. */
export function registerSessions(program: Command): void {
  program
    .command('sessions')
    .description("the allocations coturn is relaying now, with the monitor's byte counts")
    .option('-c, --config <file>', 'the monitor config file (default: $TURN_MONITOR_CONFIG)')
    .option('--user <name>', 'only this exact username')
    .option('--client <id>', 'only this client id')
    .option('--json', 'print JSON')
    .action((opts: SessionsOptions) =>
      runCli(async () => {
        const api = ApiClient.fromConfigFile(opts.config);
        const q = new URLSearchParams();
        if (opts.user) q.set('user', opts.user);
        if (opts.client) q.set('clientId', opts.client);
        const r = await api.request('GET', `/sessions${q.size ? `?${q}` : ''}`);
        if (r.status !== 200) throw fail('listing sessions failed', r);
        const sessions = r.body as unknown as SessionView[];
        process.stdout.write(opts.json ? `${JSON.stringify(sessions)}\n` : renderSessions(sessions));
      }),
    );
  program
    .command('revoke <clientId>')
    .description(
      'secret mode: cancel every allocation of a client now and refuse it until its credentials have expired',
    )
    .option('-c, --config <file>', 'the monitor config file (default: $TURN_MONITOR_CONFIG)')
    .option('--lift', 'lift the revoke instead')
    .action((clientId: string, opts: { config?: string; lift?: boolean }) =>
      runCli(async () => {
        const api = ApiClient.fromConfigFile(opts.config);
        const r = await api.request(opts.lift ? 'DELETE' : 'POST', `/clients/${encodeURIComponent(clientId)}/revoke`);
        if (r.status !== 200) throw fail(opts.lift ? 'lifting the revoke failed' : 'revoke failed', r);
        process.stdout.write(
          opts.lift
            ? `${clientId}: revoke lifted\n`
            : `${clientId}: revoked until ${String(r.body.until)}, ${String(r.body.cancelled)} allocation(s) cancelled\n`,
        );
      }),
    );
}
