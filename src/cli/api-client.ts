import { ConfigError, loadConfig } from '../config/load.js';
import type { ApiScope, Config } from '../config/schema.js';
import { HEALTH_SCOPE, scopeFor } from '../http/scopes.js';
import { isWildcard } from '../util/addresses.js';
import { clientCertFromEnv, httpRequest, leafFingerprint, readPem, type ClientTls } from './http-request.js';

/** A JSON answer of the monitor's API: error answers carry `error`. */
export type ApiBody = { error?: string } & Record<string, unknown>;

/** A key the CLI can send: from the environment, or a configured key written out (not a sha256 entry). */
interface UsableKey {
  key: string;
  name: string;
  scopes: readonly ApiScope[] | null;
}

function usableKeys(config: Config): UsableKey[] {
  const out: UsableKey[] = [];
  config.http.apiKeys.forEach((k, i) => {
    if (typeof k === 'string') out.push({ key: k, name: `key${i + 1}`, scopes: null });
    else if (k.key !== null) out.push({ key: k.key, name: k.name, scopes: k.scopes });
  });
  return out;
}

/** The 403 of a key without the route's scope, as the CLI says it. */
export function forbiddenMessage(method: string, pathname: string, scope: unknown, keyName: string | null): string {
  const p = pathname.split('?')[0];
  return `${method} ${p} needs an API key with the "${String(scope)}" scope; the key sent (${keyName ?? 'none'}) lacks it: set TURN_MONITOR_API_KEY to a key holding it, or add the scope to that key's http.apiKeys entry`;
}

/** Talks to a running monitor's HTTP API, as configured in its config file (HTTPS too). */
export class ApiClient {
  private readonly keys: UsableKey[];
  private tlsOptions: ClientTls | null = null;

  constructor(
    readonly config: Config,
    apiKey: string | null = process.env.TURN_MONITOR_API_KEY ?? null,
  ) {
    this.keys = apiKey !== null ? [{ key: apiKey, name: 'TURN_MONITOR_API_KEY', scopes: null }] : usableKeys(config);
  }

  static fromConfigFile(file: string | undefined): ApiClient {
    return new ApiClient(loadConfig(file ?? process.env.TURN_MONITOR_CONFIG));
  }

  get baseUrl(): string {
    const { host, port, tls } = this.config.http;
    const h = isWildcard(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return `${tls ? 'https' : 'http'}://${h}:${port}`;
  }

  /** The configured key holding the scope a route needs (else the first one). */
  keyFor(method: string, pathname: string): UsableKey | null {
    const p = pathname.split('?')[0];
    const scope = scopeFor(method, p) ?? (p === '/health' || p === '/metrics' ? HEALTH_SCOPE : null);
    return (
      this.keys.find((k) => scope === null || k.scopes === null || k.scopes.includes(scope)) ?? this.keys[0] ?? null
    );
  }

  /**
   * HTTPS: trust the configured certificate's chain and http.tls.ca besides the system roots, and
   * the configured leaf whatever names it carries (the CLI calls its own host's monitor, often by
   * 127.0.0.1); a client certificate from TURN_MONITOR_CLIENT_CERT/KEY for mutual TLS.
   */
  private tls(): ClientTls | undefined {
    const t = this.config.http.tls;
    if (!t) return undefined;
    if (!this.tlsOptions) {
      const chain = readPem(t.cert, 'http.tls.cert');
      this.tlsOptions = {
        ca: [chain, ...(t.ca ? [readPem(t.ca, 'http.tls.ca')] : [])],
        pinnedFingerprint: leafFingerprint(chain),
        ...clientCertFromEnv(),
      };
    }
    return this.tlsOptions;
  }

  async request(method: string, pathname: string, json?: unknown): Promise<{ status: number; body: ApiBody }> {
    const headers: Record<string, string> = {};
    const key = this.keyFor(method, pathname);
    if (key) headers.authorization = `Bearer ${key.key}`;
    if (json !== undefined) headers['content-type'] = 'application/json';
    let answer;
    try {
      answer = await httpRequest(this.baseUrl + pathname, {
        method,
        headers,
        body: json === undefined ? undefined : JSON.stringify(json),
        tls: this.tls(),
      });
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new Error(`cannot reach the monitor at ${this.baseUrl}: ${e.code ?? e.message}`);
    }
    let body: ApiBody = {};
    try {
      body = JSON.parse(answer.text) as ApiBody;
    } catch {
      /* not JSON */
    }
    if (answer.status === 403 && body.code === 'forbidden')
      throw new Error(forbiddenMessage(method, pathname, body.scope, key?.name ?? null));
    return { status: answer.status, body };
  }
}

/** Run a CLI action; config errors exit 2, other errors 1, with one clear line on stderr. */
export async function runCli(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    process.stderr.write(`turn-monitor: ${(err as Error).message}\n`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
  }
}
