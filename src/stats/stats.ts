import type { AppContext } from '../context.js';
import type { Subsystem, SubsystemHealth, TurnConfContributor } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import type { ChildExit, ChildRun } from '../supervisor/managed-child.js';
import type { ManagedChild } from '../supervisor/managed-child.js';
import type { UsageEvent, UsageSink } from './events.js';
import { registerStatsMetrics, type StatsMetrics } from './metrics.js';
import { AllocationModel } from './model.js';
import { LogSource } from './log-source.js';
import { createPrivateRedis, freeLoopbackPort } from './private-redis.js';
import { RedisSource, redisTargetFromUrl, statsdbLine, type RedisTarget } from './redis-source.js';
import { UsageStore } from './store.js';

/**
 * Usage accounting: events from coturn (redis-statsdb; the log source plugs in beside it) go
 * through the allocation model into SQLite. Each turnserver spawn is a new run, and the child's
 * exit closes that run's open allocations, since a killed turnserver publishes nothing more.
 */
export class Stats implements Subsystem, TurnConfContributor, UsageSink {
  readonly name = 'stats';
  readonly model: AllocationModel;
  store: UsageStore | null = null;
  private redisChild: ManagedChild | null = null;
  private redisTarget: RedisTarget | null = null;
  redis: RedisSource | null = null;
  logSource: LogSource | null = null;
  private run: string | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private lastCheckpoint = 0;
  private stopping: Promise<void> | null = null;
  private readonly metrics: StatsMetrics;
  private readonly log: Logger;

  constructor(private readonly ctx: AppContext) {
    this.log = ctx.logger.child({ component: 'stats' });
    this.metrics = registerStatsMetrics(ctx.registry, () => this.model.openCount);
    const source = ctx.config.stats.source;
    this.model = new AllocationModel(
      { deleteGraceMs: ctx.config.stats.deleteGraceMs, primary: source === 'log' ? 'log' : 'redis', secondary: source === 'both' ? 'log' : null },
      {
        onIncrement: (kind, c) => this.metrics.relayed(kind, c),
        onDisagreement: (r) => {
          this.metrics.disagreement();
          this.log.warn({ event: 'sources-disagree', run: r.run, allocationId: r.allocationId, redis: [r.totalClient, r.totalPeer], log: [r.altClient, r.altPeer] }, 'redis and log totals differ');
        },
        onFilled: (r) => {
          this.metrics.filled();
          this.log.info({ event: 'filled-from-log', run: r.run, allocationId: r.allocationId }, 'totals taken from the log: redis missed the end of this allocation');
        },
      },
    );
  }

  private get usesRedis(): boolean {
    return this.ctx.config.stats.source !== 'log';
  }

  turnConfLines(): string[] {
    const lines = this.usesRedis && this.redisTarget ? [statsdbLine(this.redisTarget)] : [];
    return this.logSource ? [...lines, ...this.logSource.turnConfLines()] : lines;
  }

  ingest(event: UsageEvent): void {
    this.metrics.event(event.kind);
    // Events before the first spawn cannot exist; keep them under a placeholder run all the same.
    this.model.ingest(event, this.run ?? 'before-first-run');
  }

  async start(): Promise<void> {
    const { config, supervisor } = this.ctx;
    this.store = new UsageStore(config.stats.dbFile);
    const leftovers = this.store.closeLeftovers('monitor-restart');
    if (leftovers > 0) this.log.warn({ event: 'leftovers-closed', count: leftovers }, 'closed allocations left open by an earlier monitor');
    supervisor.on('spawn', (run: ChildRun) => {
      this.run = run.runId;
    });
    supervisor.on('exit', (exit: ChildExit) => this.onChildExit(exit));

    if (this.usesRedis) {
      if (config.redis.url) {
        this.redisTarget = redisTargetFromUrl(config.redis.url);
      } else {
        const port = await freeLoopbackPort();
        this.redisTarget = { host: '127.0.0.1', port, db: 0, password: null, tls: false };
        this.redisChild = createPrivateRedis(config, this.ctx.logger, port);
        await this.redisChild.start();
      }
      this.redis = new RedisSource(this.redisTarget, this, this.log, this.ctx.now);
      this.redis.on('gap', () => {
        this.metrics.reconnect();
        this.model.markGap();
      });
      this.redis.on('malformed', () => this.metrics.malformed());
      await this.redis.start();
    }
    if (config.stats.source !== 'redis') {
      this.logSource = new LogSource(supervisor, this, this.ctx.now);
      this.logSource.start();
    }
    this.ctx.usage = { openAllocationCount: () => this.model.openCount };
    const interval = Math.min(50, config.stats.checkpointMs);
    this.flushTimer = setInterval(() => this.flush(), interval);
  }

  forceKill(): void {
    this.redisChild?.crash('SIGKILL');
  }

  /** Count a message a source could not parse. */
  malformed(): void {
    this.metrics.malformed();
  }

  private onChildExit(exit: ChildExit): void {
    const closed = this.model.closeRun(exit.runId, exit.at.getTime(), 'child-exit');
    if (closed > 0) this.log.warn({ event: 'run-closed', runId: exit.runId, count: closed }, 'turnserver exited: its open allocations were closed');
    this.flush(true);
  }

  /** Write every changed record in one transaction (and time-driven closes first). */
  flush(checkpoint = false): void {
    if (!this.store) return;
    try {
      const now = this.ctx.now();
      this.model.tick(now);
      checkpoint ||= now - this.lastCheckpoint >= this.ctx.config.stats.checkpointMs;
      if (checkpoint) this.lastCheckpoint = now;
      this.store.write(this.model.drainDirty(checkpoint));
    } catch (err) {
      this.log.error({ event: 'store-failed', err: (err as Error).message }, 'writing usage records failed');
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      if (this.flushTimer) clearInterval(this.flushTimer);
      await this.redis?.stop();
      this.logSource?.stop();
      this.flush(true);
      await this.redisChild?.stop();
      this.store?.close();
      this.store = null;
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
      openAllocations: this.model.openCount,
    };
  }
}
