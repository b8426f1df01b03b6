import type { Command } from 'commander';
import { hostUrl } from '../discovery/payload.js';
import { createSelector, type TurnHost } from '../discovery/selector.js';
import { forbiddenMessage } from './api-client.js';
import { clientCertFromEnv, httpRequest, readPem, type ClientTls } from './http-request.js';

interface FleetOptions {
  zookeeper: string;
  path: string;
  key?: string;
  timeout: string;
  drainTimeout: string;
  json?: boolean;
  cacert?: string;
}

/** What one host answered (or why it did not). */
export interface HostResult {
  host: string;
  restAddr: string;
  ok: boolean;
  status: number | null;
  /** ok: a short summary; failed: the reason. */
  detail: string;
  body: unknown;
}

export interface FleetRequest {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  /** One line from a 2xx answer. */
  summarize(body: unknown): string;
}

const count = (body: unknown, key: string): number | null => {
  if (Array.isArray(body)) return body.length;
  const v = (body as Record<string, unknown> | null)?.[key];
  return Array.isArray(v) ? v.length : typeof v === 'number' ? v : null;
};

export function fleetRequest(action: string, target: string | undefined, drainTimeoutSec: number): FleetRequest {
  switch (action) {
    case 'sessions':
      return { method: 'GET', path: '/sessions', summarize: (b) => `${count(b, 'sessions') ?? '?'} sessions` };
    case 'revoke':
      if (!target) throw new Error('revoke needs a CLIENT id');
      return {
        method: 'POST',
        path: `/clients/${encodeURIComponent(target)}/revoke`,
        summarize: (b) => {
          const n = count(b, 'revoked') ?? count(b, 'sessions');
          return n === null ? 'revoked' : `revoked (${n} sessions)`;
        },
      };
    case 'drain':
      if (!target) throw new Error('drain needs a HOST (its node name in the registry)');
      return { method: 'POST', path: '/drain', body: { timeoutSec: drainTimeoutSec }, summarize: () => 'draining' };
    default:
      throw new Error(`unknown fleet action "${action}": sessions, revoke CLIENT or drain HOST`);
  }
}

/** Call one host's API; never waits longer than `timeoutMs`, never throws. */
export async function callHost(
  host: Pick<TurnHost, 'name' | 'restAddr'> & Partial<Pick<TurnHost, 'restUrl'>>,
  req: FleetRequest,
  key: string | null,
  timeoutMs: number,
  tls?: ClientTls,
): Promise<HostResult> {
  const base = { host: host.name, restAddr: host.restAddr };
  const headers: Record<string, string> = {};
  if (key) headers.authorization = `Bearer ${key}`;
  if (req.body !== undefined) headers['content-type'] = 'application/json';
  try {
    // restUrl carries the scheme (https with http.tls on); nodes of older monitors have restAddr only.
    const res = await httpRequest(`${hostUrl(host)}${req.path}`, {
      method: req.method,
      headers,
      body: req.body === undefined ? undefined : JSON.stringify(req.body),
      timeoutMs,
      tls,
    });
    const text = res.text;
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      /* not JSON: keep the text */
    }
    if (res.status === 403 && (body as { code?: unknown } | null)?.code === 'forbidden') {
      const scope = (body as { scope?: unknown }).scope;
      return {
        ...base,
        ok: false,
        status: 403,
        detail: `HTTP 403: ${forbiddenMessage(req.method, req.path, scope, key ? '--key' : null)}`,
        body,
      };
    }
    if (res.status < 200 || res.status >= 300) {
      const why = (body as { error?: unknown } | null)?.error;
      return {
        ...base,
        ok: false,
        status: res.status,
        detail: `HTTP ${res.status}${typeof why === 'string' ? `: ${why}` : ''}`,
        body,
      };
    }
    return { ...base, ok: true, status: res.status, detail: req.summarize(body), body };
  } catch (err) {
    const e = err as Error & { code?: string };
    const detail = e.code === 'ETIMEDOUT' ? `no answer within ${timeoutMs / 1000} s` : (e.code ?? e.message);
    return { ...base, ok: false, status: null, detail, body: null };
  }
}

/** One line per host: `HOST  ok|error  DETAIL`, aligned. */
export function renderResults(results: HostResult[]): string {
  const w = Math.max(4, ...results.map((r) => r.host.length));
  return results.map((r) => `${r.host.padEnd(w)}  ${r.ok ? 'ok   ' : 'error'}  ${r.detail}`).join('\n') + '\n';
}

async function runFleet(action: string, target: string | undefined, opts: FleetOptions): Promise<number> {
  const fail = (msg: string, code: number) => {
    process.stderr.write(`turn-monitor fleet: ${msg}\n`);
    return code;
  };
  const timeoutMs = Number(opts.timeout) * 1000;
  if (!(timeoutMs > 0)) return fail('--timeout must be a positive number of seconds', 2);
  let req: FleetRequest;
  try {
    req = fleetRequest(action, target, Number(opts.drainTimeout));
  } catch (err) {
    return fail((err as Error).message, 2);
  }
  let hosts: TurnHost[];
  try {
    const selector = createSelector({ connect: opts.zookeeper, path: opts.path });
    try {
      await selector.ready(timeoutMs);
      hosts = selector.list();
    } finally {
      await selector.close();
    }
  } catch (err) {
    return fail((err as Error).message, 1);
  }
  if (action === 'drain') {
    hosts = hosts.filter((h) => h.name === target || h.restAddr === target);
    if (hosts.length === 0) return fail(`host ${target} is not in the registry (${opts.path})`, 1);
  }
  if (hosts.length === 0) return fail(`no TURN hosts in the registry (${opts.path})`, 1);
  const key = opts.key ?? process.env.TURN_MONITOR_API_KEY ?? null;
  let tls: ClientTls;
  try {
    tls = {
      ca: opts.cacert ? [readPem(opts.cacert, '--cacert')] : [],
      pinnedFingerprint: null,
      ...clientCertFromEnv(),
    };
  } catch (err) {
    return fail((err as Error).message, 2);
  }
  const results = (await Promise.all(hosts.map((h) => callHost(h, req, key, timeoutMs, tls)))).sort((a, b) =>
    a.host.localeCompare(b.host),
  );
  process.stdout.write(opts.json ? `${JSON.stringify(results)}\n` : renderResults(results));
  return results.every((r) => r.ok) ? 0 : 1;
}

export function registerFleet(program: Command): void {
  program
    .command('fleet')
    .description(
      'act on every TURN host in the registry: sessions | revoke CLIENT | drain HOST (one line per host; exit 1 if any failed)',
    )
    .argument('<action>', 'sessions | revoke | drain')
    .argument('[target]', 'the client id (revoke) or the host node name (drain)')
    .requiredOption('--zookeeper <host:port>', 'ZooKeeper connect string')
    .option('--path <path>', 'parent node of the host nodes', '/turn/servers')
    .option('--key <key>', 'API key sent to every host (default: $TURN_MONITOR_API_KEY)')
    .option('--timeout <sec>', 'how long to wait for ZooKeeper and for each host', '5')
    .option('--drain-timeout <sec>', 'drain: how long the host may drain before it stops', '300')
    .option('--json', 'print the results as one JSON array')
    .option('--cacert <file>', "CA certificate(s) to trust for hosts serving HTTPS (besides the system's)")
    .action(async (action: string, target: string | undefined, opts: FleetOptions) => {
      process.exitCode = await runFleet(action, target, opts);
    });
}
