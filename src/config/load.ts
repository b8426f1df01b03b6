import { existsSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import type { z } from 'zod';
import { packageRoot } from './package.js';
import { ConfigError } from './errors.js';
import { configSchema, type Config, type ParsedConfig } from './schema.js';
import { readSecretFiles } from './secret-files.js';

export { packageRoot } from './package.js';
export { ConfigError } from './errors.js';

function describeIssue(issue: z.core.$ZodIssue, prefix: PropertyKey[] = []): string {
  if (issue.code === 'invalid_union') {
    // A string key or an entry object: report the branch the value's type chose.
    const branch = issue.errors.find((e) => e.length > 0 && !(e[0].code === 'invalid_type' && e[0].path.length === 0));
    if (branch) return branch.map((i) => describeIssue(i, [...prefix, ...issue.path])).join('\n');
  }
  const where = [...prefix, ...issue.path].map(String).join('.');
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => `config key "${where ? `${where}.${k}` : k}": unknown key`).join('\n');
  }
  // Zod messages name types and allowed values, never the offending value itself,
  // so a mistyped secret cannot leak into the error.
  return `config key "${where || '(root)'}": ${issue.message}`;
}

function freeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) freeze(v);
    Object.freeze(value);
  }
  return value;
}

export const isLoopback = (host: string) =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

/** Cross-key rules that need the whole object. */
function checkCombined(c: ParsedConfig): string[] {
  const errors: string[] = [];
  const noKeys = c.http.apiKeys.length === 0 && c.http.apiKeysFile === undefined;
  if (!isLoopback(c.http.host) && noKeys && !c.http.allowUnauthenticated) {
    errors.push(
      'config key "http.apiKeys": binding http.host to a non-loopback address needs at least one API key (or set http.allowUnauthenticated)',
    );
  }
  if (c.turnserver.listeningPort >= c.turnserver.minPort && c.turnserver.listeningPort <= c.turnserver.maxPort) {
    errors.push('config key "turnserver.listeningPort": must lie outside the relay range minPort..maxPort');
  }
  const tls = c.turnserver.tls;
  if ((tls.cert === null) !== (tls.key === null)) {
    const missing = tls.cert === null ? 'cert' : 'key';
    errors.push(`config key "turnserver.tls.${missing}": TLS needs both cert and key (or neither)`);
  }
  if (tls.cert !== null) {
    const t = c.turnserver;
    if (tls.port === t.listeningPort) errors.push('config key "turnserver.tls.port": must differ from listeningPort');
    if (tls.port >= t.minPort && tls.port <= t.maxPort)
      errors.push('config key "turnserver.tls.port": must lie outside the relay range minPort..maxPort');
  }
  // In userdb mode every client shares one user: a per-client quota cannot be told apart.
  if (c.credentials.mode !== 'secret') {
    if (c.quotas.defaultBytes !== null)
      errors.push(
        'config key "quotas.defaultBytes": quotas need credentials.mode "secret" (userdb mode has one shared user)',
      );
    if (Object.keys(c.quotas.clients).length > 0)
      errors.push(
        'config key "quotas.clients": quotas need credentials.mode "secret" (userdb mode has one shared user)',
      );
  }
  return errors;
}

/** Validate a plain object (already parsed JSON) into the frozen Config. Secret files are not read. */
export function buildConfig(raw: unknown, configDir: string): Config {
  return freeze(parseConfig(raw, configDir));
}

const warningsOf = new WeakMap<Config, readonly string[]>();

/** What loading the config found worth a warning (secret files others may read): logged at start. */
export function configWarnings(config: Config): readonly string[] {
  return warningsOf.get(config) ?? [];
}

function parseConfig(raw: unknown, configDir: string): ParsedConfig & { configDir: string } {
  const result = configSchema.safeParse(raw ?? {});
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => describeIssue(i)).join('\n'));
  }
  const c = result.data;
  const errors = checkCombined(c);
  if (errors.length > 0) throw new ConfigError(errors.join('\n'));

  const resolve = (p: string) => path.resolve(configDir, p);
  // Binaries given as bare names are looked up in PATH; anything with a slash is a path.
  const resolveBin = (p: string) => (p.includes('/') ? resolve(p) : p);
  c.dataDir = resolve(c.dataDir);
  c.turnserver.bin = resolveBin(c.turnserver.bin);
  c.credentials.turnadmin = resolveBin(c.credentials.turnadmin);
  c.redis.bin = resolveBin(c.redis.bin);
  const template = resolve(c.turnserver.template);
  // The default template ships with the package; a config elsewhere still finds it.
  c.turnserver.template =
    existsSync(template) || c.turnserver.template !== 'turnserver.conf.template'
      ? template
      : path.join(packageRoot, 'turnserver.conf.template');
  if (c.turnserver.tls.cert !== null) c.turnserver.tls.cert = resolve(c.turnserver.tls.cert);
  if (c.turnserver.tls.key !== null) c.turnserver.tls.key = resolve(c.turnserver.tls.key);
  c.discovery.sysClassNet = resolve(c.discovery.sysClassNet);
  c.discovery.procNetRoute = resolve(c.discovery.procNetRoute);
  c.stats.dbFile = path.resolve(c.dataDir, c.stats.dbFile);
  for (const e of c.webhooks.endpoints) if (e.secretFile !== null) e.secretFile = resolve(e.secretFile);
  const resolveOrNull = (p: string | null) => (p === null ? null : resolve(p));
  // The `…File` twins stay absent unless set (the defaults of a section are as they were).
  if (c.http.apiKeysFile !== undefined) c.http.apiKeysFile = resolve(c.http.apiKeysFile);
  if (c.http.tls) {
    c.http.tls.cert = resolve(c.http.tls.cert);
    c.http.tls.key = resolve(c.http.tls.key);
    c.http.tls.ca = resolveOrNull(c.http.tls.ca);
  }
  if (c.redis.urlFile !== undefined) c.redis.urlFile = resolve(c.redis.urlFile);
  if (c.export.postgres.urlFile !== undefined) c.export.postgres.urlFile = resolve(c.export.postgres.urlFile);
  if (c.zookeeper.authFile !== undefined) c.zookeeper.authFile = resolve(c.zookeeper.authFile);
  return { ...c, configDir };
}

/** Read and validate the JSON config file (or defaults when no file is given). */
export function loadConfig(file: string | undefined): Config {
  if (!file) return buildConfig({}, process.cwd());
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${absolute}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the surrounding text, which may hold a secret: keep only the position.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw new ConfigError(`config file ${absolute} is not valid JSON${at ? ` (at character ${at})` : ''}`);
  }
  const c = parseConfig(raw, path.dirname(absolute));
  // Every `…File` twin is read here, once: the monitor and the CLI see the secret in its key.
  const warnings = readSecretFiles(c);
  const config = freeze(c);
  warningsOf.set(config, warnings);
  return config;
}
