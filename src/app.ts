import os from 'node:os';
import { Admin } from './admin/admin.js';
import type { Config } from './config/schema.js';
import { AdminDrainControl } from './control/drain-control.js';
import { SessionControl } from './control/session-control.js';
import { wireWebhooks } from './app-webhooks.js';
import type { AppContext } from './context.js';
import { createCredentials } from './credentials/index.js';
import { FleetDenyList } from './credentials/fleet-deny.js';
import { createDiscovery } from './discovery/index.js';
import { nodeNameFor } from './discovery/identity.js';
import { createExport } from './export/index.js';
import { Drain, type DrainControl } from './drain/drain.js';
import { registerDrainMetrics } from './drain/metrics.js';
import { drainRoutes } from './http/routes/drain.js';
import { HttpServer, type HealthReport } from './http/http-server.js';
import { credentialHandler, rotateRoute } from './http/routes/credentials.js';
import { tlsRoutes } from './http/routes/tls.js';
import { sessionRoutes } from './http/routes/sessions.js';
import { quotaRoutes } from './http/routes/quota.js';
import { Quotas } from './quotas/quotas.js';
import { usageRoutes } from './http/routes/usage.js';
import type { Subsystem } from './lifecycle.js';
import type { Logger } from './log/logger.js';
import { createRegistry } from './metrics.js';
import { createStats } from './stats/index.js';
import { registerSupervisorMetrics } from './supervisor/metrics.js';
import { turnPaths } from './supervisor/render-conf.js';
import { TurnserverSupervisor } from './supervisor/turnserver-supervisor.js';
import { registerTlsMetrics } from './tls/metrics.js';
import { Tls } from './tls/tls.js';
import { createWebhooks } from './webhooks/index.js';

/**
 * The composition root: builds every subsystem, starts them in dependency order and stops them
 * in reverse. Order matters: TLS checks its certificate pair before anything runs; credentials,
 * stats and admin contribute to turnserver.conf and must be listening before turnserver starts;
 * discovery is stopped first so no signalling server hands out a host that is going away.
 */
export class App {
  readonly ctx: AppContext;
  readonly http: HttpServer;
  /** One drain of this host, whoever asks (signal, POST /drain). */
  readonly drain: Drain;
  private readonly subsystems: Subsystem[];
  private readonly started: Subsystem[] = [];
  private stopping: Promise<void> | null = null;
  private readonly log: Logger;
  private readonly admin: Admin;

  /**
   * `drainControl`: how turnserver refuses new allocations and cancels sessions; by default the
   * admin channel's. With null a drain still withdraws, stops credentials and waits, but
   * turnserver keeps accepting allocations and nothing is cancelled at the deadline.
   */
  constructor(
    config: Config,
    logger: Logger,
    options: { now?: () => number; drainControl?: DrainControl | null } = {},
  ) {
    this.log = logger.child({ component: 'app' });
    const registry = createRegistry();
    const supervisor = new TurnserverSupervisor(config, logger);
    registerSupervisorMetrics(registry, supervisor);
    this.http = new HttpServer(config, logger, { health: () => this.health(), registry });
    this.ctx = { config, logger, registry, supervisor, now: options.now ?? Date.now };

    // Started first: a bad pair is exit 2 before anything runs. Renewals reach turnserver by SIGUSR2.
    const tls = new Tls(config, logger, {
      signalReload: () => supervisor.signalTlsReload(),
      noteProbe: (address) => supervisor.probes.noteAddress(address),
    });
    registerTlsMetrics(registry, tls);
    if (tls.enabled) supervisor.on('ready', () => void tls.onTurnserverReady());
    // This host's name in exported rows, webhook events and the deny entries it makes.
    const hostId = config.export.postgres.hostId ?? nodeNameFor(config, os.hostname());
    const credentials = createCredentials(this.ctx, { hostId });
    // Secret mode with ZooKeeper: revokes are fleet state (every monitor applies every entry).
    const fleetDeny = credentials.fleetMode ? new FleetDenyList(this.ctx, credentials) : null;
    const stats = createStats(this.ctx);
    // The admin CLI renders its cli-* lines (a new password each start) and reconnects after every start.
    const admin = new Admin({ config, logger, registry, turnserver: supervisor, confFile: turnPaths(config).conf });
    supervisor.addContributor(admin);
    this.admin = admin;
    // Deny list and counters meet coturn's sessions here: new allocations of revoked clients are cancelled.
    const control = new SessionControl({
      admin,
      credentials,
      fleet: fleetDeny,
      pipeline: stats.pipeline,
      registry,
      logger,
      now: this.ctx.now,
    });
    fleetDeny?.on('applied', (entries) => control.applyFleetEntries(entries.map((d) => d.clientId)));
    if (stats.choice.source === 'redis') {
      // Redis alone cannot replay what was published while no monitor ran: ask coturn what is still live.
      supervisor.on('adopted', () => {
        const sweep = (status: string) => {
          if (status !== 'connected') return;
          admin.off('status', sweep);
          control
            .closeUnlisted()
            .catch((err: Error) =>
              this.log.warn(
                { event: 'close-unlisted-failed', err: err.message },
                'could not compare open allocations with coturn',
              ),
            );
        };
        admin.on('status', sweep);
      });
    }
    const http = this.http;
    const { rateLimitPerMinute } = config.http;
    const discovery = createDiscovery(this.ctx, { httpAddress: () => http.address, usage: stats.usage });
    let credentialsPaused = false;
    const drainControl = new AdminDrainControl({
      admin,
      control,
      version: () => stats.choice?.version ?? null,
      config,
      logger,
    });
    this.drain = new Drain({
      control: options.drainControl === undefined ? drainControl : options.drainControl,
      withdraw: (held) => discovery.hold(held),
      pauseCredentials: (paused) => (credentialsPaused = paused),
      openAllocations: () => stats.usage.openAllocationIds(),
      restartTurnserver: () => supervisor.recycle(),
      minAllocations: config.lifecycle.drainMinAllocations,
      log: logger.child({ component: 'drain' }),
    });
    registerDrainMetrics(registry, this.drain);
    const unavailable = () => (credentialsPaused ? Math.max(1, Math.ceil(config.lifecycle.drainTimeoutSec)) : null);
    http.addFastRoute(
      'GET',
      '/turncredential',
      credentialHandler(credentials, {
        gate: http.tools.gate('credentials'),
        limitPerMinute: rateLimitPerMinute,
        unavailable,
      }),
    );
    http.addRoutes(rotateRoute(credentials, logger.child({ component: 'credentials' })));
    http.addRoutes(usageRoutes(stats.pipeline, stats.queries, logger.child({ component: 'http' })));
    http.addRoutes(tlsRoutes(tls));
    http.addRoutes(sessionRoutes(control, config.credentials.mode, logger.child({ component: 'sessions' })));
    http.addRoutes(drainRoutes(this.drain, config.lifecycle.drainTimeoutSec));
    // After stats (its tables exist) and stopped after turnserver, so the closes of the stop ship.
    const exporter = createExport(this.ctx, { hostId });
    // After stats (the triggers go on its tables), stopped after turnserver: the stop's own events are sent.
    const webhooks = createWebhooks(this.ctx, { hostId });
    wireWebhooks(webhooks, { supervisor, drain: this.drain, credentials, tls, usage: stats.usage });
    // After the deny list and control it acts through, and webhooks it tells.
    const quotas = new Quotas({
      config,
      logger,
      registry,
      hostId,
      now: this.ctx.now,
      deny: (clientId, until) => control.revokeClient(clientId, { reason: 'quota', until }),
      lift: (clientId) => control.liftRevoke(clientId),
      denied: (clientId) => credentials.revoked(clientId),
      deniedAll: () => credentials.denyList.active(this.ctx.now()),
      record: (type, data, opts) => void webhooks.record(type, data, opts),
    });
    http.addRoutes(quotaRoutes(quotas, logger.child({ component: 'quotas' })));
    this.subsystems = [
      tls,
      credentials,
      ...(fleetDeny ? [fleetDeny] : []),
      stats,
      exporter,
      webhooks,
      admin,
      control,
      quotas,
      supervisor,
      http,
      discovery,
    ];
  }

  /** Start everything; on a start-up failure stop what did start and rethrow. */
  async start(): Promise<void> {
    // The API's certificate is checked before anything runs, as turnserver's is (exit 2 naming the file).
    await this.http.checkTls();
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
    const { supervisor, config } = this.ctx;
    if (!this.stopping && supervisor.configStale) {
      // An adopted turnserver runs an older conf: apply the new one without cutting calls.
      this.log.warn(
        { event: 'config-stale' },
        'the adopted turnserver runs an older conf: applying it by a drain-restart',
      );
      this.drain
        .run(config.lifecycle.drainTimeoutSec, 'restart')
        .catch((err: Error) => this.log.error({ event: 'drain-failed', err: err.message }, 'drain-restart failed'));
    }
  }

  /** Idempotent: stop started subsystems in reverse order; one failing does not skip the rest. */
  stop(): Promise<void> {
    return this.stopAll(false);
  }

  /**
   * Handover: like stop(), but turnserver and the private Redis go on serving and nothing is
   * withdrawn from discovery; the next monitor adopts them. (If a stop already began, that stop.)
   */
  handover(): Promise<void> {
    return this.stopAll(true);
  }

  private stopAll(release: boolean): Promise<void> {
    this.stopping ??= (async () => {
      for (const subsystem of [...this.started].reverse()) {
        try {
          await (release && subsystem.release ? subsystem.release() : subsystem.stop());
          this.log.debug({ event: 'stopped', subsystem: subsystem.name }, `stopped ${subsystem.name}`);
        } catch (err) {
          this.log.error(
            { event: 'stop-failed', subsystem: subsystem.name, err: (err as Error).message },
            `stopping ${subsystem.name} failed`,
          );
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
    const turn = { ...parts.turnserver, admin: this.admin.status };
    parts.turnserver = turn;
    const others = Object.entries(parts)
      .filter(([name]) => name !== 'turnserver')
      .map(([, h]) => h);
    const status =
      turn.status !== 'ok'
        ? 'down'
        : others.some((h) => h.status === 'degraded' || h.status === 'down')
          ? 'degraded'
          : 'ok';
    return { status, ...parts, draining: this.drain.status() };
  }
}

export type { Config };
