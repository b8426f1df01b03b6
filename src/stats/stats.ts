import type { AppContext, UsageView } from '../context.js';
import type { Subsystem, SubsystemHealth, TurnConfContributor } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import type { ChildExit, ChildRun, ManagedChild } from '../process/managed-child.js';
import { LogSource } from './sources/log/log-source.js';
import { freePort } from '../process/ports.js';
import { createPrivateRedis } from './sources/redis/private-redis.js';
import { RedisSource, redisTargetFromUrl, statsdbLine, type RedisTarget } from './sources/redis/redis-source.js';
import { UsagePipeline } from './pipeline.js';

/**
 * Usage accounting: events from coturn (redis-statsdb; the log source plugs in beside it) go
 * through the allocation model into SQLite. Each turnserver spawn is a new run, and the child's
 * exit closes that run's open allocations, since a killed turnserver publishes nothing more.
 */
export class Stats implements Subsystem, TurnConfContributor {
  readonly name = 'stats';
  readonly pipeline: UsagePipeline;
  private redisChild: ManagedChild | null = null;
  private redisTarget: RedisTarget | null = null;
  redis: RedisSource | null = null;
  logSource: LogSource | null = null;
  private stopping: Promise<void> | null = null;
  private readonly log: Logger;

  constructor(private readonly ctx: AppContext) {
    this.log = ctx.logger.child({ component: 'stats' });
    const { stats } = ctx.config;
    this.pipeline = new UsagePipeline({ ...stats, registry: ctx.registry, log: this.log, now: ctx.now });
  }

  private get usesRedis(): boolean {
    return this.ctx.config.stats.source !== 'log';
  }

  turnConfLines(): string[] {
    const lines = this.usesRedis && this.redisTarget ? [statsdbLine(this.redisTarget)] : [];
    return this.logSource ? [...lines, ...this.logSource.turnConfLines()] : lines;
  }

  async start(): Promise<void> {
    const { config, supervisor } = this.ctx;
    const leftovers = this.pipeline.open();
    if (leftovers > 0) this.log.warn({ event: 'leftovers-closed', count: leftovers }, 'closed allocations left open by an earlier monitor');
    supervisor.on('spawn', this.onChildSpawn);
    supervisor.on('exit', this.onChildExit);

    if (this.usesRedis) {
      if (config.redis.url) {
        this.redisTarget = redisTargetFromUrl(config.redis.url);
      } else {
        const port = await freePort();
        this.redisTarget = { host: '127.0.0.1', port, db: 0, password: null, tls: false };
        this.redisChild = createPrivateRedis(config, this.ctx.logger, port);
        await this.redisChild.start();
      }
      this.redis = new RedisSource(this.redisTarget, this.pipeline, this.log, this.ctx.now);
      this.redis.on('gap', () => this.pipeline.gap());
      this.redis.on('malformed', () => this.pipeline.malformed());
      await this.redis.start();
    }
    if (config.stats.source !== 'redis') {
      this.logSource = new LogSource(supervisor, this.pipeline, this.ctx.now);
      this.logSource.start();
    }
    this.pipeline.scheduleFlushes();
  }

  forceKill(): void {
    this.redisChild?.forceKill();
  }

  /** What others may read of live usage. */
  readonly usage: UsageView = { openAllocationCount: () => this.pipeline.model.openCount };

  private readonly onChildSpawn = (run: ChildRun): void => this.pipeline.setRun(run.runId);

  private readonly onChildExit = (exit: ChildExit): void => {
    const closed = this.pipeline.closeRun(exit.runId, exit.at.getTime(), 'child-exit');
    if (closed > 0) this.log.warn({ event: 'run-closed', runId: exit.runId, count: closed }, 'turnserver exited: its open allocations were closed');
  };

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.ctx.supervisor.off('spawn', this.onChildSpawn);
      this.ctx.supervisor.off('exit', this.onChildExit);
      await this.redis?.stop();
      this.logSource?.stop();
      this.pipeline.close();
      await this.redisChild?.stop();
    })();
    return this.stopping;
  }

  health(): SubsystemHealth {
    const subscriber = this.redis?.state ?? (this.usesRedis ? 'connecting' : 'not used');
    return {
      status: this.usesRedis && subscriber !== 'subscribed' ? 'degraded' : 'ok',
      source: this.ctx.config.stats.source,
      redis: this.usesRedis
        ? { subscriber, private: this.redisChild !== null, childState: this.redisChild?.state ?? null, reconnects: this.redis?.reconnects ?? 0, port: this.redisTarget?.port ?? null }
        : null,
      openAllocations: this.pipeline.model.openCount,
    };
  }
}
