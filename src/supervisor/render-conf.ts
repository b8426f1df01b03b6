import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.js';
import { writeFileAtomic } from '../util/atomic-write.js';

export interface TurnPaths {
  conf: string;
  pidfile: string;
  userdb: string;
  /** Copies of the last certificate pair that passed the monitor's checks: what turnserver loads. */
  tlsCert: string;
  tlsKey: string;
  /** turnserver's own log (--log-file): outlives the monitor; `.1` is the one rotated file. */
  log: string;
}

export function turnPaths(config: Config): TurnPaths {
  return {
    conf: path.join(config.dataDir, 'turnserver.conf'),
    pidfile: path.join(config.dataDir, 'turnserver.pid'),
    userdb: path.join(config.dataDir, 'turndb'),
    tlsCert: path.join(config.dataDir, 'tls-cert.pem'),
    tlsKey: path.join(config.dataDir, 'tls-key.pem'),
    log: path.join(config.dataDir, 'turnserver.log'),
  };
}

const LOOPBACK_DENIAL = ['denied-peer-ip=127.0.0.0-127.255.255.255', 'denied-peer-ip=::1'];

/**
 * TLS on: the TLS port and the monitor's checked copies of the pair (never the configured files:
 * a restarted turnserver must not pick up a renewal that failed the checks); off: no TLS at all.
 */
export function tlsLines(config: Config): string[] {
  const { cert, key, port } = config.turnserver.tls;
  if (cert === null || key === null) return ['no-tls'];
  const paths = turnPaths(config);
  return [`tls-listening-port=${port}`, `cert=${paths.tlsCert}`, `pkey=${paths.tlsKey}`];
}

/** Fill the template's {{placeholders}}; an unknown placeholder is an error, not a silent blank. */
export function renderTemplate(template: string, config: Config, monitorLines: readonly string[]): string {
  const t = config.turnserver;
  const paths = turnPaths(config);
  const values: Record<string, string> = {
    listeningIp: t.listeningIp,
    listeningPort: String(t.listeningPort),
    externalIpLine: t.externalIp ? `external-ip=${t.externalIp}` : '',
    relayIpLine: t.relayIp ? `relay-ip=${t.relayIp}` : '',
    minPort: String(t.minPort),
    maxPort: String(t.maxPort),
    realm: t.realm,
    userdb: paths.userdb,
    pidfile: paths.pidfile,
    // Tests relay to turnutils_peer on 127.0.0.1; production never should.
    loopbackDenial: t.allowLoopbackPeers ? 'allow-loopback-peers' : LOOPBACK_DENIAL.join('\n'),
    tlsLines: tlsLines(config).join('\n'),
    monitor_block: [...monitorLines, ...t.extraConfig].join('\n'),
  };
  return template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    if (!(name in values)) throw new Error(`turnserver template has an unknown placeholder {{${name}}}`);
    return values[name];
  });
}

/** Render the template into dataDir atomically (mode 0600: it may name a Redis password). */
export async function writeTurnConf(config: Config, monitorLines: readonly string[]): Promise<string> {
  const target = turnPaths(config).conf;
  await writeFileAtomic(target, await renderTurnConf(config, monitorLines), 0o600);
  return target;
}

/** The conf text a spawn now would get (compared with the running turnserver's to see if it is stale). */
export async function renderTurnConf(config: Config, monitorLines: readonly string[]): Promise<string> {
  return renderTemplate(await readFile(config.turnserver.template, 'utf8'), config, monitorLines);
}
