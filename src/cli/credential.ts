import type { Command } from 'commander';
import { ApiClient, runCli } from './api-client.js';

interface Options {
  config?: string;
  rotate?: boolean;
  revoke?: boolean;
  json?: boolean;
  showSecret?: boolean;
  user?: string;
}

/** `turn-monitor credential`: show (and optionally rotate) the running monitor's credential. */
export function registerCredential(program: Command): void {
  program
    .command('credential')
    .description("show the running monitor's current TURN credential; --rotate makes a new one now")
    .option('-c, --config <file>', 'the monitor config file (default: $TURN_MONITOR_CONFIG)')
    .option('--rotate', 'rotate now (revokes nothing already issued: old credentials expire as scheduled)')
    .option('--revoke', 'userdb mode: new credential, old users deleted and their allocations cancelled now')
    .option('--user <clientId>', 'secret mode: the client id to issue for')
    .option('--json', 'print JSON')
    .option('--show-secret', 'include the password (hidden by default)')
    .action((opts: Options) =>
      runCli(async () => {
        const api = ApiClient.fromConfigFile(opts.config);
        if (opts.revoke) {
          const r = await api.request('POST', '/turncredential/revoke');
          if (r.status !== 200) throw new Error(`revoke failed: HTTP ${r.status} ${r.body?.error ?? ''}`.trim());
          process.stderr.write(`revoked: ${String(r.body.cancelled)} allocation(s) cancelled\n`);
        } else if (opts.rotate) {
          const r = await api.request('POST', '/turncredential/rotate');
          if (r.status !== 200) throw new Error(`rotation failed: HTTP ${r.status} ${r.body?.error ?? ''}`.trim());
        }
        const q = opts.user ? `?user=${encodeURIComponent(opts.user)}` : '';
        const r = await api.request('GET', `/turncredential${q}`);
        if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body?.error ?? 'request failed'}`);
        const c = r.body as { username: string; password: string; expired_time: number; ttl: number; uris: string[] };
        const shown = {
          username: c.username,
          password: opts.showSecret ? c.password : '(hidden: --show-secret)',
          expires: new Date(c.expired_time).toISOString(),
          ttl: c.ttl,
          uris: c.uris,
          rotated: !!opts.rotate,
        };
        if (opts.json)
          process.stdout.write(
            `${JSON.stringify(opts.showSecret ? { ...c, rotated: !!opts.rotate } : { ...shown, password: undefined })}\n`,
          );
        else
          process.stdout.write(
            Object.entries(shown)
              .map(([k, v]) => `${k.padEnd(9)} ${Array.isArray(v) ? v.join(' ') : v}`)
              .join('\n') + '\n',
          );
      }),
    );
}
