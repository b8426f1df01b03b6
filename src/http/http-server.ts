import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import express, { type RequestHandler, type Router } from 'express';
import type { Registry } from 'prom-client';
import { isLoopback } from '../config/load.js';
import type { ApiScope, Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { StartupError, type Subsystem, type SubsystemHealth } from '../lifecycle.js';
import { CertificateError } from '../tls/certificate.js';
import { ApiTls } from './api-tls.js';
import {
  apiKeyResolver,
  apiKeysFrom,
  requestKeyName,
  scopeGate,
  scopeMiddleware,
  type ApiKeyCheck,
  type KeyResolver,
  type ScopedMiddleware,
  type ScopeGate,
} from './auth.js';
import { registerHttpMetrics, type RequestCounter } from './metrics.js';
import { sendJson } from './respond.js';
import { HEALTH_SCOPE } from './scopes.js';

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  [subsystem: string]: unknown;
}

/** What route installers get: the one API-key check, per scope, as express middleware and as a plain gate. */
export interface RouteTools {
  /** Declares a route's scope: `router.get('/usage', guard('usage'), …)` (README, Security). */
  guard(scope: ApiScope): ScopedMiddleware;
  /** The same for a bare node:http handler: answers 401/403 itself and returns false. */
  gate(scope: ApiScope): ScopeGate;
  /** Whether a request presents any accepted key (no scope). */
  authorized: ApiKeyCheck;
  /** A route not yet given a scope: the strictest one, admin (every string key has it). */
  requireApiKey: RequestHandler;
}

/** A set of HTTP routes, mounted before the server listens. */
export type RouteInstaller = (router: Router, tools: RouteTools) => void;

/** A route answered on bare node:http, before express (hot paths only). It must answer. */
export type FastHandler = (req: IncomingMessage, res: ServerResponse) => void;
type FastMethod = 'GET' | 'POST';
interface FastRoute {
  method: FastMethod;
  path: string;
  handler: FastHandler;
}

/** The warning a non-loopback API without TLS gets at start (null: loopback, TLS, or allowPlaintext). */
export function plaintextWarning(http: Pick<Config['http'], 'host' | 'tls' | 'allowPlaintext'>): string | null {
  if (http.tls || isLoopback(http.host) || http.allowPlaintext) return null;
  return `the HTTP API listens on ${http.host} without http.tls: API keys and TURN credentials cross the network in clear text (set http.tls, or http.allowPlaintext when a proxy in front terminates TLS)`;
}

/** The monitor's REST API: /health, /metrics and whatever the subsystems install. */
export class HttpServer implements Subsystem {
  readonly name = 'http';
  private server: Server | HttpsServer | null = null;
  private readonly apiTls: ApiTls | null;
  private tlsOptions: Awaited<ReturnType<ApiTls['load']>> | null = null;
  private readonly requests: RequestCounter;
  private stopping: Promise<void> | null = null;
  private readonly installers: RouteInstaller[] = [];
  /** `METHOD path` → the route (its path is what the request is counted under). */
  private readonly fastRoutes = new Map<string, FastRoute>();
  private readonly log: Logger;
  /** The API-key check every protected route uses (built once from http.apiKeys). */
  readonly tools: RouteTools;

  constructor(
    private readonly config: Config,
    logger: Logger,
    private readonly deps: { health: () => HealthReport; registry: Registry },
  ) {
    this.log = logger.child({ component: 'http' });
    const resolve: KeyResolver = apiKeyResolver(apiKeysFrom(config.http.apiKeys));
    const guard = (scope: ApiScope) => scopeMiddleware(resolve, scope);
    this.tools = {
      guard,
      gate: (scope) => scopeGate(resolve, scope),
      authorized: (authorization, queryKey, connection) => resolve(authorization, queryKey, connection) !== null,
      requireApiKey: guard('admin'),
    };
    this.apiTls = config.http.tls ? new ApiTls(config.http.tls, logger) : null;
    this.requests = registerHttpMetrics(deps.registry);
  }

  /** HTTPS on: check the pair (and CA) now, before anything starts; a bad one is exit 2 naming the file. */
  async checkTls(): Promise<void> {
    if (!this.apiTls || this.tlsOptions) return;
    try {
      this.tlsOptions = await this.apiTls.load();
    } catch (err) {
      if (err instanceof CertificateError) throw new StartupError(`http.tls: ${err.message}`, 2);
      throw err;
    }
  }

  /**
   * One access-log line and one count per answered request: the route pattern (bounded), the
   * status and the key's name (never the key, never the query string, which may carry ?key=).
   * The credential fast path logs at debug: it answers every client connect.
   */
  private record(req: IncomingMessage, res: ServerResponse, route: string, started: number, fast: boolean): void {
    const key = requestKeyName(req);
    this.requests.count(route, res.statusCode, key);
    const level = fast ? 'debug' : 'info';
    if (!this.log.isLevelEnabled(level)) return;
    this.log[level](
      // keyName, not key: the logger redacts any field named key.
      { event: 'request', method: req.method, route, status: res.statusCode, keyName: key, ms: Date.now() - started },
      `${req.method} ${route} ${res.statusCode} (key ${key})`,
    );
  }

  addRoutes(installer: RouteInstaller): void {
    this.installers.push(installer);
  }

  /**
   * Serve `method path` with a plain handler, skipping express (its routing, req/res
   * decoration and middleware cost several times a bare node:http answer: README, Performance,
   * credential_api). A request whose URL path is
   * exactly `path` goes straight to it (GET also takes HEAD, as in express); spellings only
   * express matches (a trailing slash, other letter case) reach the same handler through express.
   */
  addFastRoute(method: FastMethod, path: string, handler: FastHandler): void {
    this.fastRoutes.set(`${method} ${path}`, { method, path, handler });
  }

  /** The fast route for a request, if any. */
  private fastRoute(req: IncomingMessage): FastRoute | undefined {
    if (this.fastRoutes.size === 0) return undefined;
    const url = req.url ?? '';
    const q = url.indexOf('?');
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    return this.fastRoutes.get(`${method} ${q < 0 ? url : url.slice(0, q)}`);
  }

  /** The answer to a route that threw, as express's error handler below gives it. */
  private failed(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    this.log.error(
      { event: 'route-error', path: req.url?.split('?')[0], err: (err as Error)?.message },
      'request failed',
    );
    if (res.headersSent) res.destroy();
    else sendJson(res, 500, { type: 'error', code: 'internal', error: 'internal error' });
  }

  /** The bound address (the configured port may be 0 in tests). */
  get address(): { host: string; port: number } {
    const a = this.server?.address() as AddressInfo | null;
    return { host: this.config.http.host, port: a?.port ?? this.config.http.port };
  }

  private buildApp(): express.Express {
    const app = express();
    app.disable('x-powered-by');
    app.set('trust proxy', false);
    // Open (they carry no secret), or behind the usage scope with http.protectHealth.
    const open: RequestHandler[] = this.config.http.protectHealth ? [this.tools.guard(HEALTH_SCOPE)] : [];
    app.get('/health', ...open, (_req, res) => {
      const report = this.deps.health();
      res.status(report.status === 'down' ? 503 : 200).json(report);
    });
    app.get('/metrics', ...open, async (_req, res) => {
      res.set('Content-Type', this.deps.registry.contentType).send(await this.deps.registry.metrics());
    });
    for (const { method, path, handler } of this.fastRoutes.values()) {
      const viaExpress: RequestHandler = (req, res) => handler(req, res);
      if (method === 'GET') app.get(path, viaExpress);
      else app.post(path, viaExpress);
    }
    const router = express.Router();
    for (const install of this.installers) install(router, this.tools);
    app.use(router);
    app.use((_req, res) => res.status(404).json({ type: 'error', code: 'not_found', error: 'no such route' }));
    // Errors are reported without their details: a message could carry a credential.
    app.use(((err, req, res, _next) => {
      const status = typeof err?.status === 'number' && err.status < 500 ? err.status : 500;
      if (status >= 500) this.log.error({ event: 'route-error', path: req.path, err: err?.message }, 'request failed');
      res.status(status).json({
        type: 'error',
        code: status === 500 ? 'internal' : 'bad_request',
        error: status === 500 ? 'internal error' : 'bad request',
      });
    }) as express.ErrorRequestHandler);
    return app;
  }

  async start(): Promise<void> {
    await this.checkTls();
    const app = this.buildApp();
    const handle = (req: IncomingMessage, res: ServerResponse) => {
      const started = Date.now();
      const fast = this.fastRoute(req);
      if (!fast) {
        res.once('finish', () =>
          this.record(req, res, (req as express.Request).route?.path ?? 'unmatched', started, false),
        );
        return void app(req, res);
      }
      try {
        fast.handler(req, res);
      } catch (err) {
        this.failed(req, res, err);
      }
      const route = fast.path;
      if (res.writableEnded) this.record(req, res, route, started, true);
      else res.once('finish', () => this.record(req, res, route, started, true));
    };
    const tls = this.tlsOptions;
    const server: Server | HttpsServer = tls
      ? createHttpsServer(
          { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: !!tls.ca, rejectUnauthorized: !!tls.ca },
          handle,
        )
      : createServer(handle);
    server.listen(this.config.http.port, this.config.http.host);
    server.keepAliveTimeout = 5000;
    try {
      await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new StartupError(
        `cannot listen on http ${this.config.http.host}:${this.config.http.port}: ${e.code ?? e.message}`,
      );
    }
    this.server = server;
    if (tls && this.apiTls) {
      const https = server as HttpsServer;
      await this.apiTls.watch(tls.info, (options) => https.setSecureContext(options));
    }
    const plaintext = plaintextWarning(this.config.http);
    if (plaintext) this.log.warn({ event: 'plaintext', host: this.config.http.host }, plaintext);
    this.log.info(
      { event: 'listening', ...this.address, scheme: tls ? 'https' : 'http', clientCertificates: !!tls?.ca },
      `HTTP API listening (${tls ? 'https' : 'http'})`,
    );
  }

  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      this.apiTls?.stop();
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.stopping;
  }

  health(): SubsystemHealth {
    const tls = this.apiTls?.health() ?? null;
    const status = !this.server ? 'down' : this.apiTls?.lastError ? 'degraded' : 'ok';
    return { status, ...this.address, scheme: this.config.http.tls ? 'https' : 'http', tls };
  }
}
