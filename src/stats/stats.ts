import type { AppContext, UsageView } from '../context.js';
import { StartupError, type Subsystem, type SubsystemHealth, type TurnConfContributor } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import type { ChildExit, ChildRun, ManagedChild } from '../process/managed-child.js';
import { LogSource } from './sources/log/log-source.js';
import { freePort } from '../process/ports.js';
import { createPrivateRedis, runningPrivateRedisPort } from './sources/redis/private-redis.js';
import { chooseSource, turnserverVersion, type SourceChoice } from './source-choice.js';
import { RedisSource, redisTargetFromUrl, statsdbLine, type RedisTarget } from './sources/redis/redis-source.js';
import { UsagePipeline } from './pipeline.js';
import { UsageQueries } from './usage/usage-queries.js';
import { Retention } from './retention.js';

/**
 * Usage accounting: events from coturn (redis-statsdb; the log source plugs in beside it) go
 * through the allocation model into SQLite. Each turnserver spawn is a new run, and the child's
 * exit closes that run's open allocations, since a killed turnserver publishes nothing more.
 */
export class Stats implements Subsystem, TurnConfContributor {
  readonly name = 'stats';
  readonly pipeline: UsagePipeline;
  /** Reads of stored usage (GET /usage), off the event loop. */
  readonly queries: UsageQueries;
  /** Bounded history: old closed records pruned, the file's space given back. */
  private readonly retention: Retention;
  private redisChild: ManagedChild | null = null;
  private redisTarget: RedisTarget | null = null;
  redis: RedisSource | null = null;
  logSource: LogSource | null = null;
  private stopping: Promise<void> | null = null;
  private readonly log: Logger;
  /** The usage source in use (stats.source 'auto' resolved by turnserver's version) and why. */
  readonly choice: SourceChoice;
  /** Whether the records of earlier monitors were dealt with (closed, or carried on with an adopted run). */
  private leftoversHandled = false;

  constructor(
    private readonly ctx: AppContext,
    options: { turnserverVersion?: (bin: string) => string | null } = {},
  ) {
    this.log = ctx.logger.child({ component: 'stats' });
    const { stats, turnserver } = ctx.config;
    const version = stats.source === 'auto' ? (options.turnserverVersion ?? turnserverVersion)(turnserver.bin) : null;
    this.choice = chooseSource(stats.source, version);
    this.pipeline = new UsagePipeline({
      ...stats,
      source: this.choice.source,
      registry: ctx.registry,
      log: this.log,
      now: ctx.now,
      ownProbes: ctx.supervisor.probes,
    });
    this.queries = new UsageQueries(stats.dbFile, this.log);
    this.retention = new Retention({
      dbFile: stats.dbFile,
      retentionDays: stats.retentionDays,
      exportEnabled: ctx.config.export.postgres.url !== null,
      registry: ctx.registry,
      log: ctx.logger.child({ component: 'retention' }),
      now: ctx.now,
    });
  }

  private get usesRedis(): boolean {
    return this.choice.source !== 'log';
  }

  turnConfLines(): string[] {
    const lines = this.usesRedis && this.redisTarget ? [statsdbLine(this.redisTarget)] : [];
    return this.logSource ? [...lines, ...this.logSource.turnConfLines()] : lines;
  }

  async start(): Promise<void> {
    const { config, supervisor } = this.ctx;
    const { source, reason, version } = this.choice;
    this.log.info(
      { event: 'source-chosen', source, reason, version, configured: config.stats.source },
      `usage source: ${source} (${reason})`,
    );
    try {
      this.pipeline.open();
      await this.queries.start();
    } catch (err) {
      // Exit 2: pm2 does not restart it (ecosystem stop_exit_codes); a restart would fail the same way.
      throw new StartupError(
        `the usage database ${config.stats.dbFile} cannot be opened: ${(err as Error).message} (move it aside to start a new one)`,
        2,
      );
    }
    this.retention.start(this.pipeline.store!);
    if (source !== 'redis') supervisor.setLogResume(this.pipeline.committedLogPosition());
    supervisor.on('spawn', this.onChildSpawn);
    supervisor.on('adopted', this.onChildAdopted);
    supervisor.on('exit', this.onChildExit);

    if (this.usesRedis) {
      if (config.redis.url) {
        this.redisTarget = redisTargetFromUrl(config.redis.url);
      } else {
        // An earlier monitor's private Redis still running is adopted on its port.
        const port = runningPrivateRedisPort(config) ?? (await freePort());
        this.redisTarget = { host: '127.0.0.1', port, db: 0, password: null, tls: false };
        this.redisChild = createPrivateRedis(config, this.ctx.logger, port);
        await this.redisChild.start();
      }
      this.redis = new RedisSource(this.redisTarget, this.pipeline, this.log, this.ctx.now);
      this.redis.on('gap', () => this.pipeline.gap());
      this.redis.on('malformed', () => this.pipeline.malformed());
      await this.redis.start();
    }
    if (source !== 'redis') {
      this.logSource = new LogSource(supervisor, this.pipeline, this.ctx.now);
      this.logSource.start();
    }
    this.pipeline.scheduleFlushes();
  }

  forceKill(): void {
    this.redisChild?.forceKill();
  }

  /** What others may read of live usage. */
  readonly usage: UsageView = {
    openAllocationCount: () => this.pipeline.model.openCount,
    openAllocationIds: () => this.pipeline.model.openRecords().map((r) => r.allocationId),
  };

  private readonly onChildSpawn = (run: ChildRun): void => {
    if (!this.leftoversHandled) {
      this.leftoversHandled = true;
      const closed = this.pipeline.closeLeftovers();
      if (closed > 0)
        this.log.warn(
          { event: 'leftovers-closed', count: closed },
          'closed allocations left open by an earlier monitor',
        );
    }
    this.pipeline.setRun(run.runId);
  };

  /**
   * The turnserver an earlier monitor started still serves: its open allocations carry on. With
   * the log as a source, the log is replayed from the committed position, so they stay exact;
   * with Redis alone, events published while no monitor ran are lost: marked incomplete.
   */
  private readonly onChildAdopted = (run: ChildRun): void => {
    this.leftoversHandled = true;
    const closed = this.pipeline.closeLeftovers(run.runId);
    const restored = this.pipeline.resumeRun(run.runId, this.choice.source !== 'log');
    this.pipeline.setRun(run.runId);
    this.log.info(
      { event: 'run-adopted', runId: run.runId, restored, closed },
      'carrying on with the open allocations of the adopted turnserver',
    );
  };

  private readonly onChildExit = (exit: ChildExit): void => {
    const closed = this.pipeline.closeRun(exit.runId, exit.at.getTime(), 'child-exit');
    if (closed > 0)
      this.log.warn(
        { event: 'run-closed', runId: exit.runId, count: closed },
        'turnserver exited: its open allocations were closed',
      );
  };

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.ctx.supervisor.off('spawn', this.onChildSpawn);
      this.ctx.supervisor.off('adopted', this.onChildAdopted);
      this.ctx.supervisor.off('exit', this.onChildExit);
      await this.retention.stop();
      await this.queries.stop();
      await this.redis?.stop();
      this.logSource?.stop();
      this.pipeline.close();
      if (this.releasing) this.redisChild?.release();
      else await this.redisChild?.stop();
    })();
    return this.stopping;
  }

  private releasing = false;

  /** Handover: write everything, stop our parts, leave the private Redis serving for the next monitor. */
  release(): Promise<void> {
    this.releasing = true;
    return this.stop();
  }

  health(): SubsystemHealth {
    const subscriber = this.redis?.state ?? (this.usesRedis ? 'connecting' : 'not used');
    return {
      status: this.usesRedis && subscriber !== 'subscribed' ? 'degraded' : 'ok',
      source: this.choice.source,
      sourceReason: this.choice.reason,
      turnserverVersion: this.choice.version,
      redis: this.usesRedis
        ? {
            subscriber,
            private: this.redisChild !== null,
            childState: this.redisChild?.state ?? null,
            reconnects: this.redis?.reconnects ?? 0,
            port: this.redisTarget?.port ?? null,
          }
        : null,
      openAllocations: this.pipeline.model.openCount,
      queries: this.queries.health(),
      history: this.retention.history(),
    };
  }
}
