import { DeliveryStore, type DueRow, type Settled } from './delivery-store.js';
import { EndpointClient, MAX_IN_FLIGHT } from './http-send.js';
import type { DeliveryResult, EndpointFigures, FromThread, ThreadConfig, ThreadEndpoint } from './protocol.js';
import { nextAttemptAt, type Outcome } from './retry-policy.js';

/** Failed attempts in a row after which an endpoint counts as down: it is probed, one request at a time. */
const DOWN_AFTER = 3;
/** Between the probes of a down endpoint: 1 s doubling up to 5 s (a success resumes everything). */
const probeGapMs = (streak: number) => Math.min(5000, 1000 * 2 ** Math.min(streak - DOWN_AFTER, 10));
const FAR_AHEAD = Number.MAX_SAFE_INTEGER;
/** An endpoint failing this long is worth an operator's look (/health degraded, one warning). */
export const FAILING_WARN_MS = 60_000;
const PRUNE_EVERY_MS = 3_600_000;

interface Endpoint {
  cfg: ThreadEndpoint;
  client: EndpointClient;
  /** Deliveries sent and not yet written back (in flight, or settled and waiting for the batch). */
  busy: Set<number>;
  inFlight: number;
  /** Retryable failures in a row. */
  streak: number;
  pausedUntil: number;
  failingSince: number | null;
  warnedFailing: boolean;
  lastError: string | null;
  lastDeliveredAt: number | null;
  lastFailedWarnAt: number;
  figures: { pending: number; failed: number; oldestPendingAt: number | null };
}

/**
 * The delivery loop of the webhook outbox, on its own thread. Per endpoint: up to MAX_IN_FLIGHT
 * requests at once over keep-alive sockets, rows taken in (due, seq) order with each event
 * waiting for its predecessor (per allocation, per kind) at that endpoint; outcomes written back
 * in batches. Retries back off per delivery (1 s doubling to 10 min, jittered, or Retry-After)
 * until maxAge; an endpoint failing several times in a row is probed one request at a time, and
 * once it answers again everything that was backing off is due at once.
 */
export class Dispatcher {
  private readonly store: DeliveryStore;
  private readonly endpoints: Endpoint[];
  private settled: Settled[] = [];
  private revive = new Set<Endpoint>();
  private writeScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private nextStatusAt = 0;
  private nextPruneAt = 0;
  private counts = new Map<string, number>();
  private latencies: number[] = [];

  constructor(
    private readonly cfg: ThreadConfig,
    private readonly post: (m: FromThread) => void,
  ) {
    this.store = new DeliveryStore(cfg.file);
    this.endpoints = cfg.endpoints.map((e) => ({
      cfg: e,
      client: new EndpointClient({ url: e.url, secret: e.secret, timeoutMs: e.timeoutMs, userAgent: cfg.userAgent }),
      busy: new Set(),
      inFlight: 0,
      // Not known to answer yet: probed first, so that what an earlier monitor left backing off is
      // sent at once when the endpoint answers now, and not when each event's own retry comes due.
      streak: DOWN_AFTER,
      pausedUntil: 0,
      failingSince: null,
      warnedFailing: false,
      lastError: null,
      lastDeliveredAt: null,
      lastFailedWarnAt: 0,
      figures: { pending: 0, failed: 0, oldestPendingAt: null },
    }));
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.cfg.pollMs);
    this.tick();
  }

  /** Look for work now (an event was just written). */
  poke(): void {
    if (!this.stopped) for (const ep of this.endpoints) this.pump(ep);
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string): void {
    this.post({ type: 'log', level, fields, msg });
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    if (this.settled.length > 0) this.write();
    for (const ep of this.endpoints) this.pump(ep);
    if (now >= this.nextPruneAt) {
      this.nextPruneAt = now + PRUNE_EVERY_MS;
      this.prune(now);
    }
    if (now >= this.nextStatusAt) this.report(now);
  }

  /** Sendable rows not already taken, due by `at`. */
  private take(ep: Endpoint, at: number, limit: number): DueRow[] {
    try {
      return this.store.due(ep.cfg.id, at, limit + ep.busy.size).filter((r) => !ep.busy.has(r.seq));
    } catch (err) {
      this.log(
        'error',
        { event: 'webhook-read-failed', err: (err as Error).message },
        'reading the webhook outbox failed',
      );
      return [];
    }
  }

  private pump(ep: Endpoint): void {
    if (this.stopped) return;
    const now = Date.now();
    if (now < ep.pausedUntil) return;
    if (ep.streak >= DOWN_AFTER) {
      // Down (or not known to answer): one probe, a due event if there is one, else the next to
      // come due (whose failure is not counted against it: its own schedule stands).
      if (ep.inFlight > 0) return;
      const probe = this.take(ep, now, 1)[0] ?? this.take(ep, FAR_AHEAD, 1)[0];
      if (probe) this.send(ep, probe);
      return;
    }
    const capacity = MAX_IN_FLIGHT - ep.inFlight;
    if (capacity <= 0) return;
    for (const row of this.take(ep, now, capacity).slice(0, capacity)) this.send(ep, row);
  }

  private send(ep: Endpoint, row: DueRow): void {
    ep.busy.add(row.seq);
    ep.inFlight++;
    const due = row.nextAt <= Date.now();
    void ep.client.deliver(row.id, row.body).then((outcome) => this.settle(ep, row, outcome, due));
  }

  private count(ep: Endpoint, result: DeliveryResult): void {
    const k = `${ep.cfg.name}\n${result}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  private settle(ep: Endpoint, row: DueRow, o: Outcome, due: boolean): void {
    ep.inFlight--;
    // Stopped past its deadline: nothing is written, the next start sends it again (same id).
    if (this.stopped) return;
    const now = Date.now();
    const base = { endpointId: ep.cfg.id, seq: row.seq };
    if (o.kind === 'delivered') {
      if (ep.streak >= DOWN_AFTER) this.revive.add(ep);
      if (ep.warnedFailing)
        this.log('info', { event: 'webhook-recovered', endpoint: ep.cfg.name }, 'webhook endpoint answers again');
      Object.assign(ep, { streak: 0, pausedUntil: 0, failingSince: null, warnedFailing: false, lastError: null });
      ep.lastDeliveredAt = now;
      this.count(ep, 'delivered');
      this.latencies.push((now - row.queuedAt) / 1000);
      this.settled.push({ ...base, kind: 'delivered' });
    } else {
      ep.failingSince ??= now;
      ep.lastError = o.error;
      const attempts = row.attempts + 1;
      const fields = { endpoint: ep.cfg.name, eventId: row.id, attempts, err: o.error };
      if (!due && o.kind === 'retry') {
        // A probe ahead of the event's own schedule: the endpoint is still down, the event unchanged.
        ep.streak++;
        ep.pausedUntil = now + (o.retryAfterMs ?? probeGapMs(ep.streak));
        ep.busy.delete(row.seq);
        this.count(ep, 'retry');
        this.log('debug', { event: 'webhook-probe-failed', ...fields }, 'webhook endpoint still failing');
        this.warnFailing(ep, now, o.error);
        return;
      }
      const next =
        o.kind === 'retry'
          ? nextAttemptAt({
              now,
              attempts,
              queuedAt: row.queuedAt,
              maxAgeMs: this.cfg.maxAgeMs,
              retryAfterMs: o.retryAfterMs,
            })
          : null;
      if (next !== null) {
        ep.streak++;
        if (o.kind === 'retry' && o.retryAfterMs !== null)
          ep.pausedUntil = Math.max(ep.pausedUntil, now + o.retryAfterMs);
        else if (ep.streak >= DOWN_AFTER) ep.pausedUntil = now + probeGapMs(ep.streak);
        this.count(ep, 'retry');
        this.settled.push({ ...base, kind: 'retry', nextAt: next, error: o.error });
        this.log(
          'debug',
          { event: 'webhook-retry', ...fields, retryInMs: next - now },
          'webhook attempt failed: retrying',
        );
      } else {
        const error =
          o.kind === 'retry'
            ? `gave up after ${attempts} attempt(s) over ${Math.round(this.cfg.maxAgeMs / 3_600_000)} h: ${o.error}`
            : o.error;
        // The receiver answered (a 4xx): it is up, whatever it thinks of this event.
        if (o.kind === 'failed') ep.streak = 0;
        this.count(ep, 'failed');
        this.settled.push({ ...base, kind: 'failed', error, at: now });
        // One warning a minute per endpoint; the rest at debug.
        const warn = now - ep.lastFailedWarnAt >= 60_000;
        if (warn) ep.lastFailedWarnAt = now;
        this.log(
          warn ? 'warn' : 'debug',
          { event: 'webhook-event-failed', ...fields, err: error },
          'webhook event failed: kept for a replay (turn-monitor webhooks --replay-failed)',
        );
      }
      this.warnFailing(ep, now, o.error);
    }
    this.scheduleWrite();
  }

  private warnFailing(ep: Endpoint, now: number, error: string): void {
    if (ep.warnedFailing || ep.failingSince === null || now - ep.failingSince <= FAILING_WARN_MS) return;
    ep.warnedFailing = true;
    this.log(
      'warn',
      { event: 'webhook-endpoint-failing', endpoint: ep.cfg.name, err: error },
      'webhook endpoint failing for over a minute: its events wait in usage.db and are retried',
    );
  }

  private scheduleWrite(): void {
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    setImmediate(() => {
      this.writeScheduled = false;
      this.write();
    });
  }

  /** Outcomes into usage.db in one transaction; the rows are free to be taken again after it. */
  private write(): void {
    if (this.settled.length === 0) return;
    const batch = this.settled;
    try {
      this.store.apply(batch);
    } catch (err) {
      // Kept (and their rows held back): written at the next tick.
      this.log(
        'error',
        { event: 'webhook-write-failed', err: (err as Error).message },
        'writing webhook outcomes failed',
      );
      return;
    }
    this.settled = [];
    const touched = new Set<Endpoint>();
    for (const s of batch) {
      const ep = this.endpoints.find((e) => e.cfg.id === s.endpointId)!;
      ep.busy.delete(s.seq);
      touched.add(ep);
    }
    for (const ep of this.revive) {
      const n = this.store.revive(ep.cfg.id, Date.now());
      if (n > 0)
        this.log(
          'info',
          { event: 'webhook-resumed', endpoint: ep.cfg.name, due: n },
          'webhook endpoint answers: sending what waited',
        );
    }
    this.revive.clear();
    for (const ep of touched) this.pump(ep);
  }

  private prune(now: number): void {
    for (const ep of this.endpoints) {
      try {
        const n = this.store.prune(ep.cfg.id, now - this.cfg.retentionMs);
        if (n > 0)
          this.log(
            'info',
            { event: 'webhook-pruned', endpoint: ep.cfg.name, count: n },
            'old failed webhook events deleted',
          );
      } catch (err) {
        this.log(
          'error',
          { event: 'webhook-prune-failed', err: (err as Error).message },
          'pruning failed webhook events failed',
        );
      }
    }
  }

  /** Figures for /health and metrics; counting is paced by its own cost (a long backlog is counted less often). */
  private report(now: number): void {
    const t0 = performance.now();
    for (const ep of this.endpoints) {
      try {
        ep.figures = this.store.figures(ep.cfg.id);
      } catch {
        /* kept: the last figures */
      }
    }
    this.nextStatusAt = now + Math.max(1000, (performance.now() - t0) * 20);
    this.post({ type: 'status', endpoints: this.endpoints.map((ep) => this.figuresOf(ep)) });
    if (this.counts.size > 0 || this.latencies.length > 0) {
      const counts = [...this.counts].map(([k, n]) => {
        const [name, result] = k.split('\n');
        return [name, result as DeliveryResult, n] as [string, DeliveryResult, number];
      });
      this.post({ type: 'counts', counts, latencies: this.latencies });
      this.counts = new Map();
      this.latencies = [];
    }
  }

  private figuresOf(ep: Endpoint): EndpointFigures {
    return {
      name: ep.cfg.name,
      ...ep.figures,
      lastError: ep.lastError,
      lastDeliveredAt: ep.lastDeliveredAt,
      failingSince: ep.failingSince,
    };
  }

  /** Whether nothing is in flight and nothing is due. */
  private idle(): boolean {
    const now = Date.now();
    return this.endpoints.every(
      (ep) =>
        ep.inFlight === 0 &&
        (now < ep.pausedUntil || this.store.due(ep.cfg.id, now, ep.busy.size + 1).length <= ep.busy.size),
    );
  }

  /**
   * Stop: with `drainMs`, keep sending what is due for up to that long (the events of the stop
   * itself); then abort what is in flight (sent again at the next start) and write what settled.
   */
  async stop(drainMs: number): Promise<void> {
    const deadline = Date.now() + drainMs;
    while (Date.now() < deadline && !this.idle()) await new Promise((r) => setTimeout(r, 20));
    this.write();
    this.report(Date.now());
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const ep of this.endpoints) ep.client.close();
    this.store.close();
  }
}
