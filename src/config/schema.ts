import { isIP } from 'node:net';
import { z } from 'zod';
import { connectStringProblem } from './connect-string.js';
import { webhooksSchema } from './webhooks.js';

// One schema for the whole monitor. Every key has a default; unknown keys are errors
// (strict objects) so a typo never silently falls back to a default.

const port = z.number().int().min(1).max(65535);
const ip = z.string().refine((s) => isIP(s) !== 0, { message: 'must be an IPv4 or IPv6 address' });
const nullableIp = ip.nullable();
const positiveInt = z.number().int().positive();

// TURN over TLS (turns:): on when cert and key are both set.
const tls = z.strictObject({
  cert: z.string().min(1).nullable().default(null),
  key: z.string().min(1).nullable().default(null),
  port: port.default(5349),
  serverName: z
    .string()
    .regex(/^[A-Za-z0-9.:*-]+$/, 'must be a DNS name or an IP address')
    .nullable()
    .default(null),
  warnDays: z.number().int().min(0).default(14),
});

const turnserver = z
  .strictObject({
    bin: z.string().min(1).default('turnserver'),
    template: z.string().min(1).default('turnserver.conf.template'),
    listeningIp: ip.default('0.0.0.0'),
    listeningPort: port.default(3478),
    externalIp: nullableIp.default(null),
    relayIp: nullableIp.default(null),
    minPort: port.default(49152),
    maxPort: port.default(65535),
    realm: z
      .string()
      .regex(/^[A-Za-z0-9.-]+$/, 'must be a DNS-style realm')
      .default('example.org'),
    restartDelayMs: z.number().int().min(0).default(3000),
    maxRestartDelayMs: positiveInt.default(60_000),
    stopTimeoutMs: positiveInt.default(5000),
    probeIntervalMs: positiveInt.default(5000),
    probeTimeoutMs: positiveInt.default(1000),
    readyTimeoutMs: positiveInt.default(10_000),
    // turnserver's log file is renamed to .1 (one old file kept) and reopened at this size.
    logMaxBytes: positiveInt.default(64 * 1024 * 1024),
    allowLoopbackPeers: z.boolean().default(false),
    // The admin CLI (telnet) on 127.0.0.1: null = a free port chosen at start.
    cliPort: port.nullable().default(null),
    extraConfig: z.array(z.string().regex(/^[^\n\r]*$/, 'must be single lines')).default([]),
    tls: tls.prefault({}),
  })
  .refine((t) => t.minPort <= t.maxPort, { message: 'minPort must not exceed maxPort', path: ['minPort'] });

/** What an API key may do (README, Security): every route declares one of these. */
export const API_SCOPES = ['credentials', 'usage', 'control', 'admin'] as const;
export type ApiScope = (typeof API_SCOPES)[number];

export const API_KEY_RULE = 'API keys must be at least 16 characters';
/** A key's name: in access logs and metrics instead of the key. */
export const KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;

// An http.apiKeys entry: a string (every scope, as before scopes existed) or a named, scoped key
// given as itself or as the hex SHA-256 of it (so the config file need not hold the key).
export const apiKeyEntry = z
  .strictObject({
    name: z.string().regex(KEY_NAME, 'must be 1-64 characters of A-Z a-z 0-9 . _ -'),
    key: z.string().min(16, API_KEY_RULE).nullable().default(null),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, 'must be the hex SHA-256 of the key (64 hex digits)')
      .nullable()
      .default(null),
    scopes: z.array(z.enum(API_SCOPES)).min(1),
    // Accepted only over a connection whose client certificate verified against http.tls.ca.
    requireClientCert: z.boolean().default(false),
  })
  .refine((e) => (e.key === null) !== (e.sha256 === null), {
    message: 'needs exactly one of key or sha256',
    path: ['key'],
  });
export const apiKey = z.union([z.string().min(16, API_KEY_RULE), apiKeyEntry]);
export type ApiKeyParsed = z.output<typeof apiKey>;
/** An http.apiKeys entry as the frozen Config holds it. */
export type ApiKeyConfig =
  | string
  | {
      readonly name: string;
      readonly key: string | null;
      readonly sha256: string | null;
      readonly scopes: readonly ApiScope[];
      readonly requireClientCert: boolean;
    };

/** The name a key has in logs and metrics: its own, or `keyN` for an unnamed one at position N (1-based). */
export const keyNameOf = (k: ApiKeyConfig, index: number): string =>
  typeof k === 'string' ? `key${index + 1}` : k.name;

/** Rules across entries: unique names; requireClientCert only with a CA to verify against. */
export function apiKeyProblems(
  keys: readonly ApiKeyConfig[],
  hasCa: boolean,
): { index: number; field: string; message: string }[] {
  const out: { index: number; field: string; message: string }[] = [];
  const seen = new Set<string>();
  keys.forEach((k, index) => {
    const name = keyNameOf(k, index);
    if (seen.has(name))
      out.push({ index, field: 'name', message: 'names must be unique (an unnamed key at position N is named keyN)' });
    seen.add(name);
    if (typeof k !== 'string' && k.requireClientCert && !hasCa)
      out.push({ index, field: 'requireClientCert', message: 'needs http.tls.ca (mutual TLS)' });
  });
  return out;
}

// HTTPS for the API: the same checks and hot reload as turnserver's pair; ca = mutual TLS.
const httpTls = z.strictObject({
  cert: z.string().min(1),
  key: z.string().min(1),
  ca: z.string().min(1).nullable().default(null),
});

/** A secret and its `…File` twin: at most one of them (exit 2 naming the key otherwise). */
const notBoth = (a: string, b: string) => ({
  message: `set either ${a} or ${b}, not both`,
  path: [b],
});

const http = z
  .strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    apiKeys: z.array(apiKey).default([]),
    // One key (a string) or one JSON entry per line; read at start instead of apiKeys.
    apiKeysFile: z.string().min(1).optional(),
    allowUnauthenticated: z.boolean().default(false),
    rateLimitPerMinute: positiveInt.default(600),
    // /health and /metrics need a key with the usage scope.
    protectHealth: z.boolean().default(false),
    tls: httpTls.nullable().default(null),
    // A non-loopback host without tls logs a warning at start unless this is set.
    allowPlaintext: z.boolean().default(false),
  })
  .refine((h) => h.apiKeys.length === 0 || h.apiKeysFile === undefined, notBoth('apiKeys', 'apiKeysFile'))
  .superRefine((h, ctx) => {
    for (const p of apiKeyProblems(h.apiKeys, h.tls?.ca != null))
      ctx.addIssue({ code: 'custom', path: ['apiKeys', p.index, p.field], message: p.message });
  });

const credentials = z
  .strictObject({
    mode: z.enum(['userdb', 'secret']).default('userdb'),
    turnadmin: z.string().min(1).default('turnadmin'),
    rotateIntervalSec: positiveInt.default(3600),
    validitySec: positiveInt.default(7200),
    uris: z.array(z.string().regex(/^(turns?|stuns?):/, 'must be a turn:, turns:, stun: or stuns: URI')).default([]),
    // coturn's user-quota: concurrent allocations per REST client id; null = no limit.
    maxAllocationsPerClient: positiveInt.nullable().default(null),
  })
  // userdb mode: a rotation must come before the current user expires. In secret mode the secret's
  // rotation and a credential's lifetime are independent (daily secret, 10-minute credentials).
  .refine((c) => c.mode !== 'userdb' || c.rotateIntervalSec <= c.validitySec, {
    message: 'rotateIntervalSec must not exceed validitySec in userdb mode',
    path: ['rotateIntervalSec'],
  })
  // In userdb mode every client shares one user, so a per-user quota would be a total one.
  .refine((c) => c.mode === 'secret' || c.maxAllocationsPerClient === null, {
    message: 'needs credentials.mode "secret" (userdb mode has one shared user, not one per client)',
    path: ['maxAllocationsPerClient'],
  });

const redis = z
  .strictObject({
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// URL')
      .nullable()
      .default(null),
    // A file holding the URL (it may carry a password), read at start.
    urlFile: z.string().min(1).optional(),
    bin: z.string().min(1).default('redis-server'),
  })
  .refine((r) => r.url === null || r.urlFile === undefined, notBoth('url', 'urlFile'));

const zookeeper = z
  .strictObject({
    connect: z
      .string()
      .refine((s) => connectStringProblem(s) === null, { message: 'must be host:port[,host:port…] (ports 1–65535)' })
      .nullable()
      .default(null),
    path: z
      .string()
      .regex(/^\/[^\0]*[^/]$/, 'must be an absolute znode path without trailing slash')
      .default('/turn/servers'),
    sessionTimeoutMs: positiveInt.default(10_000),
    // The fleet deny list (secret mode): one persistent node per revoked client id.
    deniedPath: z
      .string()
      .regex(/^\/[^\0]*[^/]$/, 'must be an absolute znode path without trailing slash')
      .default('/turn/denied'),
    // "user:password": the session authenticates (digest) and every node it creates gets the ACL
    // "digest user: all, world: read".
    auth: z
      .string()
      .regex(/^[^:\s]+:\S+$/, 'must be user:password')
      .nullable()
      .default(null),
    authFile: z.string().min(1).optional(),
  })
  .refine((k) => k.auth === null || k.authFile === undefined, notBoth('auth', 'authFile'));

const discovery = z.strictObject({
  interface: z
    .string()
    .regex(/^[^/\0]+$/, 'must be an interface name')
    .nullable()
    .default(null),
  sysClassNet: z.string().min(1).default('/sys/class/net'),
  procNetRoute: z.string().min(1).default('/proc/net/route'),
  capacityMbps: z.number().positive().default(1000),
  intervalSec: z.number().positive().default(10),
  nodeName: z
    .string()
    .regex(/^[^/\0]+$/, 'must not contain "/"')
    .nullable()
    .default(null),
  // Pause after withdrawing the node at shutdown, before turnserver stops, so watching signalling
  // servers drop this host before it stops answering.
  drainMs: z.number().int().min(0).default(1000),
});

const stats = z.strictObject({
  // auto: 'log' below coturn 4.13.0 (a '%' username crashes it while redis-statsdb is on), else 'both'.
  source: z.enum(['auto', 'redis', 'log', 'both']).default('auto'),
  dbFile: z.string().min(1).default('usage.db'),
  checkpointMs: positiveInt.default(1000),
  deleteGraceMs: positiveInt.default(2000),
  // Closed allocations that ended longer ago than this are deleted (once shipped, with the export
  // on); null keeps everything.
  retentionDays: positiveInt.nullable().default(90),
});

const exportPostgres = z.strictObject({
  // postgres://user:password@host:port/db; PG* environment variables fill what it leaves out.
  // Only the scheme is checked here (messages never echo the value: it may carry a password);
  // connection problems are reported at run time, without the password.
  url: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// connection string')
    .nullable()
    .default(null),
  // A file holding the connection string, read at start.
  urlFile: z.string().min(1).optional(),
  hostId: z.string().min(1).max(200).nullable().default(null),
  intervalSec: z.number().positive().default(5),
  batchSize: z.number().int().min(1).max(2000).default(500),
  // Raw allocation partitions (one a month) wholly older than this are detached and dropped
  // (never one holding an open allocation); null keeps them all. One monitor at a time does it.
  retentionMonths: positiveInt.nullable().default(3),
  // The billing rollups (hourly, monthly) keep this many months; null keeps them all.
  rollupRetentionMonths: positiveInt.nullable().default(25),
});

const exportConfig = z.strictObject({
  postgres: exportPostgres
    .refine((p) => p.url === null || p.urlFile === undefined, notBoth('url', 'urlFile'))
    // fleet-check compares the rollup with the raw rows: it must outlive them.
    .refine(
      (p) =>
        p.rollupRetentionMonths === null ||
        (p.retentionMonths !== null && p.rollupRetentionMonths >= p.retentionMonths),
      { message: 'must be null or at least retentionMonths', path: ['rollupRetentionMonths'] },
    )
    .prefault({}),
});

// Byte quotas per client and period (secret mode): see README, Quotas. A quota is bytes
// (client_bytes = rcvb + sentb), a non-negative integer; null = no quota.
const quotaBytes = z.number().int('must be a whole number of bytes').min(0, 'must not be negative').nullable();
const quotas = z.strictObject({
  period: z.enum(['month', 'day']).default('month'),
  defaultBytes: quotaBytes.default(null),
  warnAt: z.number().gt(0).max(1).default(0.8),
  checkIntervalSec: z.number().positive().default(2),
  // Overrides per client id on a single host without PostgreSQL (client_quotas in a fleet).
  clients: z.record(z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be a client id'), quotaBytes).default({}),
});

const lifecycle = z.strictObject({
  // SIGTERM/SIGINT drain for at most this long before turnserver is stopped; fits pm2's
  // kill_timeout (25 s) with the stop after it (discovery.drainMs + turnserver.stopTimeoutMs).
  drainTimeoutSec: z.number().min(0).max(3600).default(10),
  drainMinAllocations: z.number().int().min(0).default(0),
});

export const configSchema = z.strictObject({
  dataDir: z.string().min(1).default('./data'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info'),
  turnserver: turnserver.prefault({}),
  http: http.prefault({}),
  credentials: credentials.prefault({}),
  redis: redis.prefault({}),
  zookeeper: zookeeper.prefault({}),
  discovery: discovery.prefault({}),
  stats: stats.prefault({}),
  export: exportConfig.prefault({}),
  lifecycle: lifecycle.prefault({}),
  quotas: quotas.prefault({}),
  webhooks: webhooksSchema.prefault({}),
});

export type ConfigInput = z.input<typeof configSchema>;
type Parsed = z.output<typeof configSchema>;

type DeepReadonly<T> = T extends (infer U)[]
  ? readonly DeepReadonly<U>[]
  : T extends object
    ? { readonly [K in keyof T]: DeepReadonly<T[K]> }
    : T;

/** The validated, path-resolved, frozen configuration every subsystem receives. */
export type Config = DeepReadonly<Parsed & { configDir: string }>;
export type ParsedConfig = Parsed;
