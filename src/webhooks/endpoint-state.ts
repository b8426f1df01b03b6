import type { DueRow, Settled } from './delivery-store.js';
import { EndpointClient } from './http-send.js';
import type { DeliveryResult, ThreadEndpoint } from './protocol.js';
import { nextAttemptAt, type Outcome } from './retry-policy.js';

/** Failed attempts in a row after which an endpoint counts as down: it is probed, one request at a time. */
export const DOWN_AFTER = 3;
/** Between the probes of a down endpoint: 1 s doubling up to 5 s (a success resumes everything). */
const probeGapMs = (streak: number) => Math.min(5000, 1000 * 2 ** Math.min(streak - DOWN_AFTER, 10));
/** An endpoint failing this long is worth an operator's look (/health degraded, one warning). */
export const FAILING_WARN_MS = 60_000;

/** One endpoint as the delivery thread keeps it. */
export interface Endpoint {
  cfg: ThreadEndpoint;
  client: EndpointClient;
  /** Deliveries taken and not yet written back (ready, in flight, or settled and waiting for the batch). */
  busy: Set<number>;
  /** Due rows read ahead (one query for many sends), in order. */
  ready: DueRow[];
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

export function newEndpoint(cfg: ThreadEndpoint, userAgent: string): Endpoint {
  return {
    cfg,
    client: new EndpointClient({ url: cfg.url, secret: cfg.secret, timeoutMs: cfg.timeoutMs, userAgent }),
    busy: new Set(),
    ready: [],
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
  };
}

export const isDown = (ep: Endpoint) => ep.streak >= DOWN_AFTER;

type Level = 'debug' | 'info' | 'warn' | 'error';

/** What one attempt's outcome means: for the delivery's row, the endpoint (updated here), the logs and metrics. */
export interface Judgement {
  result: DeliveryResult;
  /** What to write for the row; null: nothing (a probe ahead of the event's own schedule failed). */
  settled: Settled | null;
  /** The endpoint answers again after being down: everything backing off is due now. */
  revive: boolean;
  /** Seconds from queued to 2xx. */
  latencySec: number | null;
  logs: { level: Level; fields: Record<string, unknown>; msg: string }[];
}

/**
 * Judge an attempt's outcome: delivered (the endpoint is up), retried with backoff until maxAge
 * after it was queued (then failed), or failed at once (a 4xx). `due`: the row was due (not a
 * probe sent ahead of its own schedule, whose failure leaves the row as it was).
 */
export function judge(ep: Endpoint, row: DueRow, o: Outcome, due: boolean, now: number, maxAgeMs: number): Judgement {
  const base = { endpointId: ep.cfg.id, seq: row.seq };
  const logs: Judgement['logs'] = [];
  if (o.kind === 'delivered') {
    const revive = isDown(ep);
    if (ep.warnedFailing)
      logs.push({
        level: 'info',
        fields: { event: 'webhook-recovered', endpoint: ep.cfg.name },
        msg: 'webhook endpoint answers again',
      });
    Object.assign(ep, {
      streak: 0,
      pausedUntil: 0,
      failingSince: null,
      warnedFailing: false,
      lastError: null,
      lastDeliveredAt: now,
    });
    return {
      result: 'delivered',
      settled: { ...base, kind: 'delivered' },
      revive,
      latencySec: (now - row.queuedAt) / 1000,
      logs,
    };
  }
  ep.failingSince ??= now;
  ep.lastError = o.error;
  const attempts = row.attempts + 1;
  const fields = { endpoint: ep.cfg.name, eventId: row.message()?.id ?? null, attempts, err: o.error };
  const judged = (result: DeliveryResult, settled: Settled | null): Judgement => {
    if (!ep.warnedFailing && now - ep.failingSince! > FAILING_WARN_MS) {
      ep.warnedFailing = true;
      logs.push({
        level: 'warn',
        fields: { event: 'webhook-endpoint-failing', endpoint: ep.cfg.name, err: o.error },
        msg: 'webhook endpoint failing for over a minute: its events wait in usage.db and are retried',
      });
    }
    return { result, settled, revive: false, latencySec: null, logs };
  };
  const next =
    o.kind === 'retry'
      ? due
        ? nextAttemptAt({ now, attempts, queuedAt: row.queuedAt, maxAgeMs, retryAfterMs: o.retryAfterMs })
        : Infinity
      : null;
  if (next !== null) {
    ep.streak++;
    const retryAfterMs = o.kind === 'retry' ? o.retryAfterMs : null;
    if (retryAfterMs !== null) ep.pausedUntil = Math.max(ep.pausedUntil, now + retryAfterMs);
    else if (isDown(ep)) ep.pausedUntil = now + probeGapMs(ep.streak);
    if (!due) {
      // A probe ahead of the event's own schedule: the endpoint is still down, the event unchanged.
      logs.push({
        level: 'debug',
        fields: { event: 'webhook-probe-failed', ...fields },
        msg: 'webhook endpoint still failing',
      });
      return judged('retry', null);
    }
    logs.push({
      level: 'debug',
      fields: { event: 'webhook-retry', ...fields, retryInMs: next - now },
      msg: 'webhook attempt failed: retrying',
    });
    return judged('retry', { ...base, kind: 'retry', nextAt: next, error: o.error });
  }
  const error =
    o.kind === 'retry'
      ? `gave up after ${attempts} attempt(s) over ${Math.round(maxAgeMs / 3_600_000)} h: ${o.error}`
      : o.error;
  // The receiver answered (a 4xx): it is up, whatever it thinks of this event.
  if (o.kind === 'failed') ep.streak = 0;
  // One warning a minute per endpoint; the rest at debug.
  const warn = now - ep.lastFailedWarnAt >= 60_000;
  if (warn) ep.lastFailedWarnAt = now;
  logs.push({
    level: warn ? 'warn' : 'debug',
    fields: { event: 'webhook-event-failed', ...fields, err: error },
    msg: 'webhook event failed: kept for a replay (turn-monitor webhooks --replay-failed)',
  });
  return judged('failed', { ...base, kind: 'failed', error, at: now });
}
