import { isIP } from 'node:net';
import type { Config } from '../config/schema.js';

const WILDCARDS = new Set(['', '0.0.0.0', '::', '::0', '[::]']);

export const isWildcard = (host: string): boolean => WILDCARDS.has(host);

/** host:port, with brackets for an IPv6 address. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The address others reach this host by: the external IP when set, else the hostname. */
function publicHost(config: Config, hostname: string): string {
  return config.turnserver.externalIp ?? hostname;
}

/** `discovery.nodeName`, else `<externalIp or hostname>:<listeningPort>`. */
export function nodeNameFor(config: Config, hostname: string): string {
  return config.discovery.nodeName ?? `${publicHost(config, hostname)}:${config.turnserver.listeningPort}`;
}

/**
 * host:port of our HTTP API as signalling servers should call it. A wildcard bind is published
 * as the external IP (or the hostname); a concrete bind address is published as it is.
 */
export function restAddrFor(http: { host: string; port: number }, config: Config, hostname: string): string {
  const host = isWildcard(http.host) ? publicHost(config, hostname) : http.host;
  return hostPort(host, http.port);
}

/**
 * The TURN URIs clients should use: `credentials.uris` when configured, else UDP and TCP URIs on
 * the external IP (or the listening IP, or the hostname for a wildcard listener).
 */
export function turnUrisFor(config: Config, hostname: string): string[] {
  if (config.credentials.uris.length > 0) return [...config.credentials.uris];
  const t = config.turnserver;
  const host = t.externalIp ?? (isWildcard(t.listeningIp) ? hostname : t.listeningIp);
  const hp = hostPort(host, t.listeningPort);
  return [`turn:${hp}?transport=udp`, `turn:${hp}?transport=tcp`];
}
