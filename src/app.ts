import type { Config } from './config/schema.js';
import type { AppContext } from './context.js';
import { createCredentials } from './credentials/index.js';
import { createDiscovery } from './discovery/index.js';
import { HttpServer, type HealthReport } from './http/http-server.js';
import { credentialHandler, rotateRoute } from './http/routes/credentials.js';
import { usageRoutes } from './http/routes/usage.js';
import type { Subsystem } from './lifecycle.js';
import type { Logger } from './log/logger.js';
import { createRegistry } from './metrics.js';
import { createStats } from './stats/index.js';
import { registerSupervisorMetrics } from './supervisor/metrics.js';
import { TurnserverSupervisor } from './supervisor/turnserver-supervisor.js';

/**
 * The composition root: builds every subsystem, starts them in dependency order and stops them
 * in reverse. Order matters: credentials and stats contribute to turnserver.conf and must be
 * listening before turnserver starts; discovery is stopped first so no signalling server hands
 * out a host that is going away.
 */
export class App {
  readonly ctx: AppContext;
  readonly http: HttpServer;
  private readonly subsystems: Subsystem[];
  private readonly started: Subsystem[] = [];
  private stopping: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(config: Config, logger: Logger, options: { now?: () => number } = {}) {
    this.log = logger.child({ component: 'app' });
    const registry = createRegistry();
    const supervisor = new TurnserverSupervisor(config, logger);
    registerSupervisorMetrics(registry, supervisor);
    this.http = new HttpServer(config, logger, { health: () => this.health(), registry });
    this.ctx = { config, logger, registry, supervisor, now: options.now ?? Date.now };

    const credentials = createCredentials(this.ctx);
    const stats = createStats(this.ctx);
    const http = this.http;
    const { rateLimitPerMinute } = config.http;
    http.addFastRoute('GET', '/turncredential', credentialHandler(credentials, { authorized: http.tools.authorized, limitPerMinute: rateLimitPerMinute }));
    http.addRoutes(rotateRoute(credentials, logger.child({ component: 'credentials' })));
    http.addRoutes(usageRoutes(stats.pipeline));
    const discovery = createDiscovery(this.ctx, { httpAddress: () => http.address, usage: stats.usage });
    this.subsystems = [credentials, stats, supervisor, http, discovery];
  }

  /** Start everything; on a start-up failure stop what did start and rethrow. */
  async start(): Promise<void> {
    for (const subsystem of this.subsystems) {
      if (this.stopping) break;
      try {
        this.log.debug({ event: 'starting', subsystem: subsystem.name }, `starting ${subsystem.name}`);
        this.started.push(subsystem);
        await subsystem.start();
      } catch (err) {
        await this.stop();
        throw err;
      }
    }
  }

  /** Idempotent: stop started subsystems in reverse order; one failing does not skip the rest. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const subsystem of [...this.started].reverse()) {
        try {
          await subsystem.stop();
          this.log.debug({ event: 'stopped', subsystem: subsystem.name }, `stopped ${subsystem.name}`);
        } catch (err) {
          this.log.error({ event: 'stop-failed', subsystem: subsystem.name, err: (err as Error).message }, `stopping ${subsystem.name} failed`);
        }
      }
    })();
    return this.stopping;
  }

  /** Where everything is, for the start-up line: addresses and paths only, never a secret. */
  whereabouts(): Record<string, unknown> {
    const { config } = this.ctx;
    const http = this.http.address;
    const t = config.turnserver;
    const redis = config.redis.url ? new URL(config.redis.url) : null;
    return {
      http: `${http.host}:${http.port}`,
      turnserver: `${t.listeningIp}:${t.listeningPort}`,
      dataDir: config.dataDir,
      usageSource: config.stats.source,
      // Host and port only: a redis URL may carry a password.
      redis: config.stats.source === 'log' ? null : redis ? `${redis.hostname}:${redis.port || 6379}` : 'private',
      discovery: config.zookeeper.connect ? `on (${config.zookeeper.connect} ${config.zookeeper.path})` : 'off',
    };
  }

  /** Forced exit: leave no child behind, without waiting for anything. */
  forceKill(): void {
    for (const subsystem of this.subsystems) subsystem.forceKill?.();
  }

  health(): HealthReport {
    const parts = Object.fromEntries(this.subsystems.map((s) => [s.name, s.health()]));
    const turn = parts.turnserver;
    const others = Object.values(parts).filter((h) => h !== turn);
    const status =
      turn.status !== 'ok' ? 'down' : others.some((h) => h.status === 'degraded' || h.status === 'down') ? 'degraded' : 'ok';
    return { status, ...parts };
  }
}

export type { Config };
