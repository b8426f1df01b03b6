import pg from 'pg';
import { Backoff } from '../process/backoff.js';
import type { MarkedColumns, MarkedHourly, Outbox } from './outbox.js';
import { describePgError, redact } from './pg-url.js';
import { maintainPartitions, monthName, monthStart, type MaintenanceReport } from './partitions.js';
import { hourlyUpsertSql, migrate, SHIP_SQL, shipParamsOfColumns } from './pg-schema.js';

export interface ShipperOptions {
  url: string;
  hostId: string;
  intervalMs: number;
  batchSize: number;
  /** Strings never to show (the password, the URL). */
  secrets: string[];
  backoff?: { baseMs: number; maxMs: number };
  /** Per connection attempt and per query; a frozen server counts as down after this. */
  timeoutMs?: number;
  /** Raw partitions older than this many months are dropped (null: never). */
  retentionMonths?: number | null;
  /** Rollup rows older than this many months are deleted (null: never). */
  rollupRetentionMonths?: number | null;
  /** Partition maintenance: at connect, then this often and whenever the month changes (1 h). */
  maintenanceIntervalMs?: number;
  /** The clock partition maintenance reads (tests cross a month boundary with it). */
  now?: () => number;
}

export interface ShipperEvents {
  shipped(rows: number): void;
  /** Rows of `unattributed_hourly` committed. */
  shippedHourly?(rows: number): void;
  failed(message: string, first: boolean): void;
  recovered(): void;
  migrated(applied: number): void;
  /** A maintenance pass ran (created, dropped or kept months; months that failed). */
  maintained?(report: MaintenanceReport): void;
  /** A maintenance pass failed as a whole (shipping goes on). */
  maintenanceFailed?(message: string): void;
}

const SHIP_NAME = 'turn_monitor_ship_v3';

/**
 * Sends the outbox to PostgreSQL: batches of marked rows in one statement each (SHIP_SQL: the
 * rows found by identity and updated in place or inserted, and the rollups given the difference;
 * atomic on its own), acknowledged in SQLite only after the statement returned, i.e. after
 * PostgreSQL committed it. Whatever goes wrong in between (server down, killed, password refused,
 * the monitor killed) leaves the marks in place and the rows are sent again; the statement is
 * idempotent (a row sent twice lands once and adds nothing the second time). Failures retry with
 * capped backoff. Partition maintenance runs on the same connection (maintain()).
 */
export class Shipper {
  private client: pg.Client | null = null;
  private migrated = false;
  private stopped = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private readonly backoff: Backoff;
  private failing = false;
  lastError: string | null = null;
  lastShippedAt: number | null = null;
  connected = false;
  rowsShipped = 0;
  hourlyRowsShipped = 0;
  failures = 0;
  /** Months whose partition could not be created (their rows wait in the default partition), or a failed pass. */
  maintenanceError: string | null = null;
  lastMaintenance: MaintenanceReport | null = null;
  private maintainedAt = -Infinity;
  private maintainedMonth: string | null = null;

  constructor(
    private readonly outbox: Outbox,
    private readonly opts: ShipperOptions,
    private readonly on: ShipperEvents,
  ) {
    this.backoff = new Backoff(opts.backoff?.baseMs ?? 500, opts.backoff?.maxMs ?? 30_000);
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Ship now instead of at the next interval. */
  poke(): void {
    this.wake?.();
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      let delay = this.opts.intervalMs;
      try {
        await this.shipAll();
        if (this.failing) {
          this.failing = false;
          this.on.recovered();
        }
        this.lastError = null;
        this.backoff.reset();
      } catch (err) {
        this.failures++;
        this.lastError = describePgError(err, this.opts.secrets, this.opts.url);
        this.on.failed(this.lastError, !this.failing);
        this.failing = true;
        this.drop();
        delay = this.backoff.next();
      }
      if (this.stopped) break;
      await this.sleep(delay);
    }
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const timeout = this.opts.timeoutMs ?? 10_000;
    const client = new pg.Client({
      connectionString: this.opts.url,
      connectionTimeoutMillis: timeout,
      query_timeout: timeout,
      keepAlive: true,
      application_name: `turn-monitor ${this.opts.hostId}`.slice(0, 63),
    });
    // An idle connection that breaks emits 'error' (unhandled, it would crash the monitor).
    client.on('error', () => this.drop(client));
    client.on('end', () => this.drop(client));
    this.client = client;
    try {
      await client.connect();
      if (!this.migrated) {
        const applied = await migrate(client);
        this.migrated = true;
        this.on.migrated(applied);
      }
    } catch (err) {
      this.drop(client);
      throw err;
    }
    this.connected = true;
    return client;
  }

  private drop(which: pg.Client | null = this.client): void {
    if (!which || which !== this.client) return;
    this.client = null;
    this.connected = false;
    which.end().catch(() => undefined);
  }

  private get now(): number {
    return (this.opts.now ?? Date.now)();
  }

  /**
   * Partition maintenance when due (first connect, the interval, a new month); never fails the
   * shipping: a month that cannot be created, or a pass that fails, is kept in maintenanceError
   * (and /health) until a pass succeeds. Rows of a missing month wait in the default partition.
   */
  async maintain(client: pg.Client, force = false): Promise<MaintenanceReport | null> {
    const now = this.now;
    const month = monthName(monthStart(now));
    // After a failure (a month that cannot be created) the next try comes within a minute.
    const interval = Math.min(this.opts.maintenanceIntervalMs ?? 3_600_000, this.maintenanceError ? 60_000 : Infinity);
    if (!force && month === this.maintainedMonth && now - this.maintainedAt < interval) return null;
    this.maintainedAt = now;
    this.maintainedMonth = month;
    try {
      const report = await maintainPartitions(client, {
        now,
        retentionMonths: this.opts.retentionMonths ?? null,
        rollupRetentionMonths: this.opts.rollupRetentionMonths ?? null,
      });
      this.lastMaintenance = report;
      this.maintenanceError =
        report.failed.length === 0
          ? null
          : `export.postgres: no partition for ${report.failed.map((f) => f.month).join(', ')} (${redact(report.failed[0].error, this.opts.secrets)}); their rows wait in the default partition`;
      this.on.maintained?.(report);
      return report;
    } catch (err) {
      this.maintenanceError = `export.postgres: partition maintenance failed: ${describePgError(err, this.opts.secrets).replace(/^export\.postgres\.url: /, '')}`;
      this.on.maintenanceFailed?.(this.maintenanceError);
      return null;
    }
  }

  /** A maintenance pass now, whether due or not (connects first). */
  async maintainNow(): Promise<MaintenanceReport | null> {
    return this.maintain(await this.connect(), true);
  }

  /** One batch: returns how many rows were sent (0: nothing to do). */
  async shipOnce(): Promise<number> {
    const batch = this.outbox.takeColumns(this.opts.batchSize);
    const client = await this.connect();
    await this.maintain(client);
    const n = batch.marks.length;
    if (n === 0) return 0;
    await client.query({ name: SHIP_NAME, text: SHIP_SQL, values: this.params(batch) });
    // Committed (a single statement commits on its own): only now may the marks go.
    this.outbox.ack(batch.marks);
    this.rowsShipped += n;
    this.lastShippedAt = Date.now();
    this.on.shipped(n);
    return n;
  }

  /**
   * Every marked row, batch after batch, keeping PostgreSQL busy: while it commits one batch the
   * next is read from SQLite and its parameters built, and it is sent as soon as the first
   * returned, before the first's marks are cleared. Batches are disjoint (each starts after the
   * previous one's last record); a row changed after it was read keeps its newer mark and goes
   * again. Stops at a short batch (or after the current one once stopped, unless `final`);
   * returns the rows sent.
   */
  async shipAll(final = false): Promise<number> {
    const client = await this.connect();
    await this.maintain(client);
    const size = this.opts.batchSize;
    const send = (params: unknown[]) => {
      const p = client.query({ name: SHIP_NAME, text: SHIP_SQL, values: params });
      p.catch(() => undefined); // awaited in the loop; must not count as unhandled meanwhile
      return p;
    };
    let batch = this.outbox.takeColumns(size);
    let committed = batch.marks.length > 0 ? send(this.params(batch)) : null;
    let sent = 0;
    while (committed) {
      const n = batch.marks.length;
      const next =
        n === size && (final || !this.stopped)
          ? this.outbox.takeColumns(size, batch.marks[n - 1].allocId)
          : { marks: [], columns: [] };
      const nextParams = next.marks.length > 0 ? this.params(next) : null;
      await committed;
      committed = nextParams ? send(nextParams) : null;
      // Committed: only now may this batch's marks go.
      this.outbox.ack(batch.marks);
      sent += n;
      this.rowsShipped += n;
      this.lastShippedAt = Date.now();
      this.on.shipped(n);
      batch = next;
    }
    return sent + (await this.shipHourly(client, final));
  }

  /**
   * The marked rows of `unattributed_hourly` (a few per hour: one per realm and username tried),
   * batch after batch; a mark goes only once PostgreSQL committed the totals it was read with.
   */
  private async shipHourly(client: pg.Client, final: boolean): Promise<number> {
    let sent = 0;
    for (;;) {
      const batch = this.outbox.takeHourly(this.opts.batchSize);
      if (batch.length > 0) {
        await client.query(hourlyUpsertSql(batch.length), this.hourlyParams(batch));
        this.outbox.ackHourly(batch);
        sent += batch.length;
        this.hourlyRowsShipped += batch.length;
        this.lastShippedAt = Date.now();
        this.on.shippedHourly?.(batch.length);
      }
      if (batch.length < this.opts.batchSize || (this.stopped && !final)) return sent;
    }
  }

  private hourlyParams(batch: MarkedHourly[]): unknown[] {
    const out: unknown[] = [];
    for (const r of batch) out.push(this.opts.hostId, new Date(r.hour), r.realm, r.username, r.sessions, ...r.counters);
    return out;
  }

  private params(batch: MarkedColumns): unknown[] {
    return shipParamsOfColumns(this.opts.hostId, batch.columns);
  }

  /**
   * Stop the loop; with `drainMs` a last pass ships what is marked while the server answers.
   * Never waits longer than that on a server that does not.
   */
  async stop(drainMs = 0): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    const bounded = (p: Promise<unknown>, ms: number) =>
      Promise.race([p.catch(() => undefined), new Promise<void>((r) => setTimeout(r, ms).unref())]);
    await bounded(this.loop ?? Promise.resolve(), Math.max(drainMs, 1000));
    if (drainMs > 0 && !this.failing && this.client) {
      await bounded(this.shipAll(true), drainMs);
    }
    this.drop();
  }
}
