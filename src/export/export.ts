import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Subsystem, SubsystemHealth } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import { Outbox } from './outbox.js';
import { secretsOf } from './pg-url.js';
import { Shipper } from './shipper.js';

export interface ExportDeps {
  config: Config;
  logger: Logger;
  registry: Registry;
  /** This host's name in every row (`export.postgres.hostId`, else the discovery node name). */
  hostId: string;
  now?: () => number;
}

/** A backlog whose oldest mark is older than this is warned about (a day of records unsent). */
const BACKLOG_WARN_SEC = 86_400;

/**
 * The fleet export: every allocation record of usage.db into one PostgreSQL, exactly once, and
 * the hourly sums of sessions that never allocated (see outbox.ts and shipper.ts). start() never waits for PostgreSQL: the monitor serves while it is
 * down, `/health` shows `export.status: degraded` and the backlog waits in SQLite.
 */
export class Export implements Subsystem {
  readonly name = 'export';
  private outbox: Outbox | null = null;
  private shipper: Shipper | null = null;
  private readonly log: Logger;
  private readonly now: () => number;
  private backlogWarned = false;
  private cache: { at: number; backlog: number; oldest: number | null } | null = null;
  private stopping: Promise<void> | null = null;
  private readonly rows: Counter;
  private readonly hourlyRows: Counter;
  private readonly failures: Counter;

  constructor(private readonly deps: ExportDeps) {
    this.log = deps.logger.child({ component: 'export' });
    this.now = deps.now ?? Date.now;
    const { registry } = deps;
    this.rows = new Counter({
      name: 'turn_monitor_export_rows_total',
      help: 'Allocation rows committed to PostgreSQL',
      registers: [registry],
    });
    this.hourlyRows = new Counter({
      name: 'turn_monitor_export_unattributed_hourly_rows_total',
      help: 'Rows of unattributed_hourly (sessions that never allocated, per hour) committed to PostgreSQL',
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'turn_monitor_export_failures_total',
      help: 'Failed export attempts (connect, migrate or batch)',
      registers: [registry],
    });
    const figures = () => this.figures();
    new Gauge({
      name: 'turn_monitor_export_backlog_rows',
      help: 'Rows (allocations and unattributed hours) changed and not yet committed to PostgreSQL',
      registers: [registry],
      collect() {
        this.set(figures().backlog);
      },
    });
    new Gauge({
      name: 'turn_monitor_export_lag_seconds',
      help: 'Age of the oldest change not yet committed to PostgreSQL (0 when none)',
      registers: [registry],
      collect() {
        this.set(figures().oldestUnshippedSec);
      },
    });
  }

  private get enabled(): boolean {
    return this.deps.config.export.postgres.url !== null;
  }

  async start(): Promise<void> {
    const { url, intervalSec, batchSize, retentionMonths, rollupRetentionMonths } = this.deps.config.export.postgres;
    if (url === null) return;
    this.outbox = new Outbox(this.deps.config.stats.dbFile);
    const secrets = secretsOf(url);
    this.shipper = new Shipper(
      this.outbox,
      {
        url,
        hostId: this.deps.hostId,
        intervalMs: intervalSec * 1000,
        batchSize,
        secrets,
        retentionMonths,
        rollupRetentionMonths,
        now: this.now,
      },
      {
        shipped: (n) => {
          this.rows.inc(n);
          this.cache = null;
        },
        shippedHourly: (n) => {
          this.hourlyRows.inc(n);
          this.cache = null;
        },
        failed: (message, first) => {
          this.failures.inc();
          // Once per outage at warn; the retries at debug.
          if (first)
            this.log.warn(
              { event: 'export-failed', err: message },
              'export to PostgreSQL failed; records wait in usage.db and are retried',
            );
          else this.log.debug({ event: 'export-retry-failed', err: message }, 'export retry failed');
        },
        recovered: () => this.log.info({ event: 'export-recovered' }, 'export to PostgreSQL works again'),
        maintained: (r) => {
          if (r.failed.length > 0)
            this.log.error(
              { event: 'export-partition-failed', months: r.failed.map((f) => f.month), err: r.failed[0].error },
              'cannot create the partition of these months; their rows wait in the default partition',
            );
          if (r.created.length + r.dropped.length + r.keptOpen.length + r.rollupDeleted > 0)
            this.log.info(
              {
                event: 'export-partitions',
                created: r.created,
                moved: r.moved,
                dropped: r.dropped,
                keptOpen: r.keptOpen,
                rollupDeleted: r.rollupDeleted,
              },
              'partition maintenance',
            );
        },
        maintenanceFailed: (message) =>
          this.log.error({ event: 'export-maintenance-failed', err: message }, 'partition maintenance failed'),
        migrated: (applied) =>
          this.log.info(
            { event: 'export-ready', hostId: this.deps.hostId, migrationsApplied: applied },
            'PostgreSQL schema ready',
          ),
      },
    );
    this.log.info(
      { event: 'export-starting', hostId: this.deps.hostId, backlog: this.outbox.backlog() },
      'exporting usage to PostgreSQL',
    );
    this.shipper.start();
    await Promise.resolve();
  }

  /** backlog, oldest mark age; read from SQLite at most once a second. */
  private figures(): { backlog: number; oldestUnshippedSec: number } {
    if (!this.outbox) return { backlog: 0, oldestUnshippedSec: 0 };
    const now = this.now();
    if (!this.cache || now - this.cache.at > 1000) {
      try {
        this.cache = { at: now, backlog: this.outbox.backlog(), oldest: this.outbox.oldestMarkedAt() };
      } catch {
        this.cache ??= { at: now, backlog: 0, oldest: null };
      }
    }
    const oldestUnshippedSec =
      this.cache.oldest === null ? 0 : Math.max(0, Math.round((now - this.cache.oldest) / 100) / 10);
    if (oldestUnshippedSec > BACKLOG_WARN_SEC && !this.backlogWarned) {
      this.backlogWarned = true;
      this.log.warn(
        { event: 'export-backlog-old', backlog: this.cache.backlog, oldestUnshippedSec },
        'export backlog holds more than a day of records',
      );
    } else if (oldestUnshippedSec < BACKLOG_WARN_SEC) this.backlogWarned = false;
    return { backlog: this.cache.backlog, oldestUnshippedSec };
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      // A last pass ships the closes the stop itself produced, if PostgreSQL answers at once.
      await this.shipper?.stop(2000);
      this.outbox?.close();
      this.outbox = null;
    })();
    return this.stopping;
  }

  health(): SubsystemHealth {
    if (!this.enabled) return { status: 'disabled' };
    const s = this.shipper;
    const { backlog, oldestUnshippedSec } = this.figures();
    return {
      status: s?.lastError || s?.maintenanceError ? 'degraded' : 'ok',
      hostId: this.deps.hostId,
      connected: s?.connected ?? false,
      backlog,
      oldestUnshippedSec,
      lastShippedAt: s?.lastShippedAt ? new Date(s.lastShippedAt).toISOString() : null,
      rowsShipped: s?.rowsShipped ?? 0,
      hourlyRowsShipped: s?.hourlyRowsShipped ?? 0,
      lastError: s?.lastError ?? null,
      partitionError: s?.maintenanceError ?? null,
    };
  }
}
