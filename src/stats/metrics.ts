import { Counter, Gauge, type Registry } from 'prom-client';
import type { UsageEvent } from './events.js';

export interface StatsMetrics {
  event(kind: UsageEvent['kind']): void;
  malformed(): void;
  reconnect(): void;
  /** Bytes of one traffic increment, client side or peer side. */
  relayed(peer: boolean, rcvb: number, sentb: number): void;
  disagreement(): void;
  filled(): void;
  /** A coturn session of the monitor's own probe, dropped; `by`: how it was recognised. */
  probeSession(by: 'address' | 'signature'): void;
}

/**
 * Usage metrics. The per-event ones are plain numbers folded into prom-client at scrape time:
 * a labelled Counter.inc() costs several times the rest of an event (see README, Performance).
 */
export function registerStatsMetrics(registry: Registry, openCount: () => number): StatsMetrics {
  // A fixed-shape object: one property increment per event, no Map lookup.
  const eventCounts: Record<UsageEvent['kind'], number> = {
    status: 0,
    traffic: 0,
    'traffic/peer': 0,
    total_traffic: 0,
    'total_traffic/peer': 0,
    closed: 0,
  };
  // rcv/sent bytes of the client side, then of the peer side.
  const relayedBytes = [0, 0, 0, 0];
  new Counter({
    name: 'turn_monitor_stats_events_total',
    help: 'usage events by kind',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      for (const kind of Object.keys(eventCounts) as UsageEvent['kind'][]) {
        if (eventCounts[kind] > 0) this.labels(kind).inc(eventCounts[kind]);
        eventCounts[kind] = 0;
      }
    },
  });
  new Counter({
    name: 'turn_monitor_relayed_bytes_total',
    help: 'relayed bytes by side (client/peer) and direction (rcv/sent), from traffic increments',
    labelNames: ['side', 'direction'],
    registers: [registry],
    collect() {
      for (const [i, side, direction] of [
        [0, 'client', 'rcv'],
        [1, 'client', 'sent'],
        [2, 'peer', 'rcv'],
        [3, 'peer', 'sent'],
      ] as const) {
        this.labels(side, direction).inc(relayedBytes[i]);
        relayedBytes[i] = 0;
      }
    },
  });
  const malformed = new Counter({
    name: 'turn_monitor_stats_malformed_total',
    help: 'messages that were not valid usage events',
    registers: [registry],
  });
  const reconnects = new Counter({
    name: 'turn_monitor_redis_reconnects_total',
    help: 'times the Redis subscriber lost its connection',
    registers: [registry],
  });
  const disagreements = new Counter({
    name: 'turn_monitor_stats_source_disagreements_total',
    help: "stats.source 'both': allocations whose redis and log totals differ",
    registers: [registry],
  });
  const filled = new Counter({
    name: 'turn_monitor_stats_filled_from_log_total',
    help: "stats.source 'both': allocations whose totals came from the log because redis missed them",
    registers: [registry],
  });
  const probeSessions = new Counter({
    name: 'turn_monitor_stats_probe_sessions_total',
    help: "coturn sessions of the monitor's own STUN probes, not recorded; by: address (log) or signature (redis)",
    labelNames: ['by'],
    registers: [registry],
  });
  for (const by of ['address', 'signature']) probeSessions.labels(by).inc(0);
  new Gauge({
    name: 'turn_monitor_open_allocations',
    help: 'allocations currently open',
    registers: [registry],
    collect() {
      this.set(openCount());
    },
  });
  return {
    event: (kind) => void eventCounts[kind]++,
    malformed: () => malformed.inc(),
    reconnect: () => reconnects.inc(),
    disagreement: () => disagreements.inc(),
    filled: () => filled.inc(),
    probeSession: (by) => probeSessions.labels(by).inc(),
    relayed(peer, rcvb, sentb) {
      const at = peer ? 2 : 0;
      relayedBytes[at] += rcvb;
      relayedBytes[at + 1] += sentb;
    },
  };
}

export interface RetentionMetrics {
  /** Allocation rows deleted by retention. */
  pruned(rows: number): void;
}

/** Size of usage.db and what retention deleted (see retention.ts). */
export function registerRetentionMetrics(registry: Registry, dbBytes: () => number): RetentionMetrics {
  new Gauge({
    name: 'turn_monitor_usage_db_bytes',
    help: 'size of usage.db and its WAL on disk',
    registers: [registry],
    collect() {
      this.set(dbBytes());
    },
  });
  const pruned = new Counter({
    name: 'turn_monitor_usage_pruned_total',
    help: 'closed allocation records deleted because they ended more than stats.retentionDays ago',
    registers: [registry],
  });
  return {
    pruned: (rows) => {
      if (rows > 0) pruned.inc(rows);
    },
  };
}
