import type { Config } from '../config/schema.js';
import { hostPort, isWildcard } from '../util/addresses.js';

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
