import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { isWildcard } from '../util/addresses.js';

/** A JSON answer of the monitor's API: error answers carry `error`. */
export type ApiBody = { error?: string } & Record<string, unknown>;

/** Talks to a running monitor's HTTP API, as configured in its config file. */
export class ApiClient {
  constructor(
    readonly config: Config,
    private readonly apiKey = process.env.TURN_MONITOR_API_KEY ?? config.http.apiKeys[0] ?? null,
  ) {}

  static fromConfigFile(file: string | undefined): ApiClient {
    return new ApiClient(loadConfig(file ?? process.env.TURN_MONITOR_CONFIG));
  }

  get baseUrl(): string {
    const { host, port } = this.config.http;
    const h = isWildcard(host) ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return `http://${h}:${port}`;
  }

  async request(method: string, pathname: string, json?: unknown): Promise<{ status: number; body: ApiBody }> {
    const headers: Record<string, string> = {};
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    if (json !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(this.baseUrl + pathname, {
        method,
        headers,
        body: json === undefined ? undefined : JSON.stringify(json),
      });
    } catch (err) {
      throw new Error(
        `cannot reach the monitor at ${this.baseUrl}: ${(err as Error & { cause?: { code?: string } }).cause?.code ?? (err as Error).message}`,
      );
    }
    const text = await res.text();
    let body: ApiBody = {};
    try {
      body = JSON.parse(text) as ApiBody;
    } catch {
      /* not JSON */
    }
    return { status: res.status, body };
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
