import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type RequestHandler, type Router } from 'express';
import type { Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import { StartupError, type Subsystem, type SubsystemHealth } from '../lifecycle.js';
import { apiKeyCheck, apiKeyMiddleware, type ApiKeyCheck } from './auth.js';
import { sendJson } from './respond.js';

export interface HealthReport {
  status: 'ok' | 'degraded' | 'down';
  [subsystem: string]: unknown;
}

/** What route installers get: the one API-key check, as express middleware and as a plain function. */
export interface RouteTools {
  requireApiKey: RequestHandler;
  authorized: ApiKeyCheck;
}

/** A set of HTTP routes, mounted before the server listens. */
export type RouteInstaller = (router: Router, tools: RouteTools) => void;

/** A route answered on bare node:http, before express (hot paths only). It must answer. */
export type FastHandler = (req: IncomingMessage, res: ServerResponse) => void;
type FastMethod = 'GET' | 'POST';

/** The monitor's REST API: /health, /metrics and whatever the subsystems install. */
export class HttpServer implements Subsystem {
  readonly name = 'http';
  private server: Server | null = null;
  private stopping: Promise<void> | null = null;
  private readonly installers: RouteInstaller[] = [];
  private readonly fastRoutes = new Map<string, FastHandler>();
  private readonly log: Logger;
  /** The API-key check every protected route uses (built once from http.apiKeys). */
  readonly tools: RouteTools;

  constructor(
    private readonly config: Config,
    logger: Logger,
    private readonly deps: { health: () => HealthReport; registry: Registry },
  ) {
    this.log = logger.child({ component: 'http' });
    const authorized = apiKeyCheck(config.http.apiKeys);
    this.tools = { authorized, requireApiKey: apiKeyMiddleware(authorized) };
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
    this.fastRoutes.set(`${method} ${path}`, handler);
  }

  /** The fast route for a request, if any. */
  private fastRoute(req: IncomingMessage): FastHandler | undefined {
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
    app.get('/health', (_req, res) => {
      const report = this.deps.health();
      res.status(report.status === 'down' ? 503 : 200).json(report);
    });
    app.get('/metrics', async (_req, res) => {
      res.set('Content-Type', this.deps.registry.contentType).send(await this.deps.registry.metrics());
    });
    for (const [route, handler] of this.fastRoutes) {
      const [method, path] = route.split(' ');
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
    const app = this.buildApp();
    const server = createServer((req, res) => {
      const fast = this.fastRoute(req);
      if (!fast) return void app(req, res);
      try {
        fast(req, res);
      } catch (err) {
        this.failed(req, res, err);
      }
    });
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
    this.log.info({ event: 'listening', ...this.address }, 'HTTP API listening');
  }

  stop(): Promise<void> {
    this.stopping ??= new Promise<void>((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    return this.stopping;
  }

  health(): SubsystemHealth {
    return { status: this.server ? 'ok' : 'down', ...this.address };
  }
}
