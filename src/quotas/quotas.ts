import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { WebhookEventType } from '../config/webhooks.js';
import type { DeniedClient } from '../credentials/state-store.js';
import { describePgError, secretsOf } from '../export/pg-url.js';
import type { Subsystem, SubsystemHealth } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import { LocalQuotaStore } from './local-store.js';
import { periodBounds, quotaClock, stateOf, type QuotaState } from './period.js';
import { PgQuotaStore } from './pg-store.js';
import { planCheck, withQuotaDenials, type QuotaAction } from './plan.js';
import type { BadRow, CheckInput, QuotaStore } from './store.js';

/** What quotas act through (wired by the composition root). */
export interface QuotaDeps {
  config: Config;
  logger: Logger;
  registry: Registry;
  hostId: string;
  now: () => number;
  /** Deny fleet-wide (secret mode): SessionControl.revokeClient / liftRevoke. */
  deny(clientId: string, until: number): Promise<unknown>;
  lift(clientId: string): Promise<unknown>;
  /** The local deny entry of a client, if any (a revoke by hand is never lifted by quotas). */
  denied(clientId: string): DeniedClient | null;
  /** Active local deny entries (the exceeded gauge counts those of reason quota). */
  deniedAll(): DeniedClient[];
  record(type: WebhookEventType, data: Record<string, unknown>, opts: { key?: string; order?: string }): void;
}

export interface QuotaView {
  clientId: string;
  period: 'month' | 'day';
  periodStart: string;
  periodEnd: string;
  usedBytes: number;
  quotaBytes: number | null;
  state: QuotaState;
}

/** Quotas are on in secret mode with a default, overrides, or a fleet store to hold overrides. */
export function quotasEnabled(c: Config): boolean {
  return (
    c.credentials.mode === 'secret' &&
    (c.quotas.defaultBytes !== null || Object.keys(c.quotas.clients).length > 0 || c.export.postgres.url !== null)
  );
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Byte quotas per client and period (README, Quotas). Every monitor runs this loop; in a fleet
 * only the holder of the enforcer lock acts (pg-store.ts says why a PostgreSQL advisory lock),
 * on a single host without PostgreSQL the host itself. Each check (every checkIntervalSec) reads
 * the clients at or above their warning threshold and the state kept so far, plans (plan.ts) and
 * acts: webhooks, denials fleet-wide (the deny list, until the period's end), lifts. The state is
 * written after the actions: an enforcer that dies in between has its successor repeat them (a
 * webhook may come twice, with a new id; a denial is idempotent). PostgreSQL down: nothing is
 * checked, so nothing already denied is lifted; /health says so and it is warned once per outage.
 */
export class Quotas implements Subsystem {
  readonly name = 'quotas';
  readonly enabled: boolean;
  private readonly log: Logger;
  private readonly store: QuotaStore | null;
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private enforcer = false;
  private failing = false;
  private lastError: string | null = null;
  private lastCheckAt: number | null = null;
  private lastCheckMs: number | null = null;
  /** Of it, reading usage and state (what grows with the clients in the period). */
  private lastQueryMs: number | null = null;
  private badRows: BadRow[] = [];
  private readonly checks: Counter;
  private readonly secrets: string[];

  constructor(private readonly deps: QuotaDeps) {
    const { config } = deps;
    this.log = deps.logger.child({ component: 'quotas' });
    this.enabled = quotasEnabled(config);
    this.clock = quotaClock(deps.now);
    const url = config.export.postgres.url;
    this.secrets = url ? secretsOf(url) : [];
    this.store = !this.enabled
      ? null
      : url
        ? new PgQuotaStore(url, deps.hostId)
        : new LocalQuotaStore(
            config.stats.dbFile,
            path.join(config.dataDir, 'quota-state.json'),
            config.quotas.clients as Record<string, number | null>,
          );
    this.checks = new Counter({
      name: 'turn_monitor_quota_checks_total',
      help: 'quota checks this monitor ran as the enforcer, by result (ok, failed)',
      labelNames: ['result'],
      registers: [deps.registry],
    });
    const exceeded = () => this.quotaDenials().length;
    new Gauge({
      name: 'turn_monitor_quota_exceeded_clients',
      help: 'clients denied for their quota now (the fleet deny list as this host holds it)',
      registers: [deps.registry],
      collect() {
        this.set(exceeded());
      },
    });
    const leading = () => (this.enforcer ? 1 : 0);
    new Gauge({
      name: 'turn_monitor_quota_enforcer',
      help: '1 while this monitor is the quota enforcer',
      registers: [deps.registry],
      collect() {
        this.set(leading());
      },
    });
  }

  /** The deny list's entries for a quota (not revokes by hand), as this host holds it. */
  private quotaDenials() {
    return this.deps.deniedAll().filter((d) => d.reason === 'quota');
  }

  private input(now = this.clock()): CheckInput {
    const q = this.deps.config.quotas;
    const { start, end } = periodBounds(now, q.period);
    return { period: q.period, start, end, warnAt: q.warnAt, defaultBytes: q.defaultBytes };
  }

  async start(): Promise<void> {
    if (!this.enabled) return;
    const q = this.deps.config.quotas;
    this.timer = setInterval(() => void this.tick(), q.checkIntervalSec * 1000);
    this.log.info(
      { event: 'quotas-started', store: this.store!.kind, period: q.period, defaultBytes: q.defaultBytes },
      'quotas on',
    );
    void this.tick();
  }

  /** One check, unless one is still running. */
  tick(): Promise<void> {
    this.running ??= this.check().finally(() => (this.running = null));
    return this.running;
  }

  private async check(): Promise<void> {
    const store = this.store!;
    try {
      const lead = await store.lead();
      if (lead !== this.enforcer)
        this.log.info(
          { event: lead ? 'quota-enforcer' : 'quota-enforcer-lost', hostId: this.deps.hostId },
          lead ? 'this monitor enforces quotas' : 'no longer the quota enforcer',
        );
      this.enforcer = lead;
      if (this.failing) {
        this.failing = false;
        this.log.info({ event: 'quotas-recovered' }, 'quota checks work again');
      }
      this.lastError = null;
      if (!lead || this.stopped) return;
      const t0 = performance.now();
      const input = this.input();
      const [over, states] = await Promise.all([store.over(input), store.states()]);
      this.lastQueryMs = Math.round((performance.now() - t0) * 10) / 10;
      const denied = this.quotaDenials().map((d) => d.clientId);
      const known = withQuotaDenials(states, denied, this.deps.config.turnserver.realm, input.start);
      const plan = planCheck(over, known, input.start);
      for (const a of plan.actions) await this.act(a, input);
      await store.save(plan.save, plan.drop);
      this.badRows = await store.badRows();
      this.lastCheckMs = Math.round((performance.now() - t0) * 10) / 10;
      this.lastCheckAt = Date.now();
      this.checks.labels('ok').inc();
    } catch (err) {
      this.checks.labels('failed').inc();
      this.enforcer = false;
      store.reset();
      this.lastError =
        store.kind === 'fleet'
          ? `${describePgError(err, this.secrets)}: quotas are not enforced meanwhile`
          : `quota check failed: ${(err as Error).message}`;
      if (!this.failing)
        this.log.warn({ event: 'quotas-failed', err: this.lastError }, 'quota check failed; retrying every interval');
      else this.log.debug({ event: 'quotas-retry-failed', err: this.lastError }, 'quota check failed again');
      this.failing = true;
    }
  }

  private async act(a: QuotaAction, input: CheckInput): Promise<void> {
    const data = {
      clientId: a.clientId,
      realm: a.realm,
      period: input.period,
      periodStart: iso(input.start),
      periodEnd: iso(input.end),
      usedBytes: a.used,
      quotaBytes: a.quota,
    };
    const order = `client:${a.clientId}`;
    const key = `${a.realm}\n${a.clientId}\n${input.start}\n${a.quota}`;
    if (a.kind === 'warn') {
      this.deps.record('quota.warning', data, { key, order });
      this.log.info({ event: 'quota-warning', clientId: a.clientId, used: a.used, quota: a.quota }, 'quota warning');
    } else if (a.kind === 'exceed') {
      // The entry is persisted (and queued for ZooKeeper) before anything else can fail.
      await this.deps
        .deny(a.clientId, input.end)
        .catch((err: Error) =>
          this.log.error(
            { event: 'quota-cut-failed', clientId: a.clientId, err: err.message },
            'could not cut the allocations of a client over its quota here: the deny list still applies',
          ),
        );
      this.deps.record('quota.exceeded', data, { key, order });
      this.log.warn(
        { event: 'quota-exceeded', clientId: a.clientId, used: a.used, quota: a.quota, until: iso(input.end) },
        'client over its quota: denied fleet-wide until the period ends',
      );
    } else if (a.kind === 'lift') {
      // A revoke by hand is not ours to lift.
      if (this.deps.denied(a.clientId)?.reason !== 'revoked') await this.deps.lift(a.clientId);
      // reason raised: its quota now lies above its usage; period: the period it was denied in ended.
      this.deps.record('quota.reset', { ...data, reason: a.why }, { order });
      this.log.info({ event: 'quota-reset', clientId: a.clientId, why: a.why }, 'quota denial lifted');
    }
  }

  /** One client's standing now (GET /clients/{id}/quota). */
  async view(clientId: string): Promise<QuotaView> {
    const input = this.input();
    const { used, quota } = await this.store!.usageOf(this.deps.config.turnserver.realm, clientId, input);
    return {
      clientId,
      period: input.period,
      periodStart: iso(input.start),
      periodEnd: iso(input.end),
      usedBytes: used,
      quotaBytes: quota,
      state: stateOf(used, quota, input.warnAt),
    };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
    await this.store?.close();
    this.enforcer = false;
  }

  health(): SubsystemHealth {
    if (!this.enabled) return { status: 'disabled' };
    const input = this.input();
    const problem = this.lastError ?? (this.badRows.length > 0 ? 'client_quotas has rows that are skipped' : null);
    return {
      status: problem ? 'degraded' : 'ok',
      store: this.store!.kind,
      enforcer: this.enforcer,
      enforced: !this.lastError,
      period: input.period,
      periodStart: iso(input.start),
      periodEnd: iso(input.end),
      lastCheckAt: this.lastCheckAt ? iso(this.lastCheckAt) : null,
      lastCheckMs: this.lastCheckMs,
      lastQueryMs: this.lastQueryMs,
      exceeded: this.quotaDenials().length,
      badRows: this.badRows,
      error: problem,
    };
  }
}
