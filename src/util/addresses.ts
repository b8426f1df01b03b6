import { isIP } from 'node:net';
import type { Config } from '../config/schema.js';

const WILDCARDS = new Set(['', '0.0.0.0', '::', '::0', '[::]']);

export const isWildcard = (host: string): boolean => WILDCARDS.has(host);

/** host:port, with brackets for an IPv6 address. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The TURN/STUN URIs clients should use (credential responses and the discovery payload):
 * `credentials.uris` when configured, else UDP and TCP TURN URIs plus a STUN URI on the external
 * IP (or the listening IP, or the hostname for a wildcard listener); with TLS on, also a `turns:`
 * URI on the TLS port, named as the certificate is (serverName, else that same host).
 */
export function turnUrisFor(config: Config, hostname: string): string[] {
  if (config.credentials.uris.length > 0) return [...config.credentials.uris];
  const t = config.turnserver;
  const host = t.externalIp ?? (isWildcard(t.listeningIp) ? hostname : t.listeningIp);
  const hp = hostPort(host, t.listeningPort);
  const uris = [`turn:${hp}?transport=udp`, `turn:${hp}?transport=tcp`, `stun:${hp}`];
  const tls = t.tls;
  if (tls.cert !== null && tls.key !== null)
    uris.push(`turns:${hostPort(tls.serverName ?? host, tls.port)}?transport=tcp`);
  return uris;
}
