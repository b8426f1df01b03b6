import { DeliveryStore, type DueRow, type Settled } from './delivery-store.js';
import { isDown, judge, newEndpoint, type Endpoint } from './endpoint-state.js';
import { MAX_IN_FLIGHT } from './http-send.js';
import { QueueTurner } from './queue-turner.js';
import { BurstGate } from './burst-gate.js';
import type { DeliveryResult, EndpointFigures, FromThread, ThreadConfig } from './protocol.js';
import type { Outcome } from './retry-policy.js';

export { FAILING_WARN_MS } from './endpoint-state.js';

const PRUNE_EVERY_MS = 3_600_000;
const FAR_AHEAD = Number.MAX_SAFE_INTEGER;
/** Outcomes written per transaction (each well under a millisecond of usage.db's write lock). */
const WRITE_CHUNK = 50;
/** Due rows read per query: one query serves this many sends. */
const READ_AHEAD = 64;
/**
 * Outcomes are written together, at most this long after the first of them: few, short write
 * transactions, so the pipeline's own commits rarely wait for the lock.
 */
const WRITE_DELAY_MS = 50;

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
  private readonly turner: QueueTurner;
  private readonly gate = new BurstGate();
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
    this.store = new DeliveryStore(cfg.file, cfg.hostId);
    this.endpoints = cfg.endpoints.map((e) => newEndpoint(e, cfg.userAgent));
    this.turner = new QueueTurner(
      this.store,
      () => this.poke(),
      (err) =>
        this.log('error', { event: 'webhook-expand-failed', err: err.message }, 'reading the webhook queue failed'),
    );
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.cfg.pollMs);
    this.tick();
  }

  /** The monitor's event loop is saturated (true) or not any more. */
  setBusy(busy: boolean): void {
    this.gate.setBusy(busy);
    if (!busy) this.poke();
  }

  /** Events wait for an ingest burst to end (a second at most): see BurstGate. */
  private held(now: number): boolean {
    return this.gate.held(now);
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
    try {
      this.store.settleCheckpoint(now);
    } catch (err) {
      this.log(
        'error',
        { event: 'webhook-checkpoint-failed', err: (err as Error).message },
        'checkpointing usage.db failed',
      );
    }
    this.gate.sawQueue(this.store.waiting()?.rows ?? 0, now);
    if (!this.held(now)) this.turner.turn();
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
      return this.store
        .due(ep.cfg.id, at, limit + ep.busy.size)
        .filter((r) => !ep.busy.has(r.seq))
        .slice(0, limit);
    } catch (err) {
      this.log(
        'error',
        { event: 'webhook-read-failed', err: (err as Error).message },
        'reading the webhook outbox failed',
      );
      return [];
    }
  }

  /** Rows read ahead go back (the endpoint went down): the probe decides what goes next. */
  private release(ep: Endpoint): void {
    for (const r of ep.ready) ep.busy.delete(r.seq);
    ep.ready = [];
  }

  private pump(ep: Endpoint): void {
    if (this.stopped) return;
    const now = Date.now();
    if (now < ep.pausedUntil || this.held(now)) return;
    if (isDown(ep)) {
      // Down (or not known to answer): one probe, a due event if there is one, else the next to
      // come due (whose failure is not counted against it: its own schedule stands).
      this.release(ep);
      if (ep.inFlight > 0) return;
      const probe = this.take(ep, now, 1)[0] ?? this.take(ep, FAR_AHEAD, 1)[0];
      if (probe) this.send(ep, probe);
      return;
    }
    while (ep.inFlight < MAX_IN_FLIGHT) {
      if (ep.ready.length === 0) {
        ep.ready = this.take(ep, now, READ_AHEAD);
        for (const r of ep.ready) ep.busy.add(r.seq);
        if (ep.ready.length === 0) return;
      }
      this.send(ep, ep.ready.shift()!);
    }
  }

  private send(ep: Endpoint, row: DueRow): void {
    ep.busy.add(row.seq);
    ep.inFlight++;
    const due = row.nextAt <= Date.now();
    const message = row.message();
    if (message === null) {
      // An allocation event whose record was pruned before it could be sent: nothing to send.
      queueMicrotask(() =>
        this.settle(ep, row, { kind: 'failed', error: 'its allocation record is gone (pruned)' }, true),
      );
      return;
    }
    void ep.client.deliver(message.id, message.body).then((outcome) => this.settle(ep, row, outcome, due));
  }

  private count(ep: Endpoint, result: DeliveryResult): void {
    const k = `${ep.cfg.name}\n${result}`;
    this.counts.set(k, (this.counts.get(k) ?? 0) + 1);
  }

  private settle(ep: Endpoint, row: DueRow, o: Outcome, due: boolean): void {
    ep.inFlight--;
    // Stopped past its deadline: nothing is written, the next start sends it again (same id).
    if (this.stopped) return;
    const j = judge(ep, row, o, due, Date.now(), this.cfg.maxAgeMs);
    for (const l of j.logs) this.log(l.level, l.fields, l.msg);
    this.count(ep, j.result);
    if (j.latencySec !== null) this.latencies.push(j.latencySec);
    if (j.revive) this.revive.add(ep);
    if (j.settled) {
      this.settled.push(j.settled);
      this.scheduleWrite();
    } else ep.busy.delete(row.seq);
    // Its place in flight is free: the next event goes now, not after the write.
    this.pump(ep);
  }

  private scheduleWrite(delayMs = WRITE_DELAY_MS): void {
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    setTimeout(() => {
      this.writeScheduled = false;
      this.write();
    }, delayMs);
  }

  /** Outcomes into usage.db in one transaction; the rows are free to be taken again after it. */
  private write(): void {
    if (this.settled.length === 0 || this.stopped) return;
    const batch = this.settled.slice(0, WRITE_CHUNK);
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
    this.settled = this.settled.slice(batch.length);
    // More: the next chunk in a moment, so the pipeline's commits get the lock in between.
    if (this.settled.length > 0) this.scheduleWrite(2);
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

  /** Whether nothing is in flight, queued or due. */
  private idle(): boolean {
    const now = Date.now();
    if (this.store.queued()) return false;
    return this.endpoints.every(
      (ep) =>
        ep.inFlight === 0 &&
        ep.ready.length === 0 &&
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
    for (let left = Infinity; this.settled.length > 0 && this.settled.length < left;) {
      left = this.settled.length;
      this.write();
    }
    this.report(Date.now());
    this.stopped = true;
    this.turner.stop();
    if (this.timer) clearInterval(this.timer);
    for (const ep of this.endpoints) ep.client.close();
    this.store.close();
  }
}
