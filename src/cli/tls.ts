import type { Command } from 'commander';
import { loadConfig } from '../config/load.js';
import { daysLeft, readAndCheckPair, type CertificateInfo } from '../tls/certificate.js';
import { ApiClient, runCli } from './api-client.js';

interface Options {
  config?: string;
  reload?: boolean;
  json?: boolean;
}

function print(info: CertificateInfo, json: boolean, extra: Record<string, unknown> = {}): void {
  const shown = {
    subject: info.subject,
    names: info.names,
    notAfter: info.notAfter,
    daysLeft: daysLeft(info),
    fingerprint: info.fingerprint,
    ...extra,
  };
  if (json) process.stdout.write(`${JSON.stringify(shown)}\n`);
  else
    process.stdout.write(
      Object.entries(shown)
        .map(([k, v]) => `${k.padEnd(11)} ${Array.isArray(v) ? v.join(' ') : String(v)}`)
        .join('\n') + '\n',
    );
}

/**
 * `turn-monitor tls`: check and show the configured certificate pair (read from the files, so it
 * works while the monitor is stopped); `--reload` has the running monitor load it and returns
 * once the new certificate is served (certbot --deploy-hook).
 */
export function registerTls(program: Command): void {
  program
    .command('tls')
    .description('check and show the TLS certificate; --reload has the running monitor serve the renewed pair')
    .option('-c, --config <file>', 'the monitor config file (default: $TURN_MONITOR_CONFIG)')
    .option('--reload', 'reload through the running monitor: returns once the new certificate is served')
    .option('--json', 'print JSON')
    .action((opts: Options) =>
      runCli(async () => {
        if (opts.reload) {
          const api = ApiClient.fromConfigFile(opts.config);
          const r = await api.request('POST', '/tls/reload');
          if (r.status !== 200) throw new Error(`TLS reload failed: ${r.body?.error ?? `HTTP ${r.status}`}`);
          print(r.body.certificate as CertificateInfo, !!opts.json, { served: true });
          return;
        }
        const config = loadConfig(opts.config ?? process.env.TURN_MONITOR_CONFIG);
        const { cert, key, serverName } = config.turnserver.tls;
        if (cert === null || key === null) throw new Error('TLS is off: turnserver.tls.cert and key are not set');
        print((await readAndCheckPair({ certFile: cert, keyFile: key, serverName })).info, !!opts.json);
      }),
    );
}
