import { Counter, Gauge, type Registry } from 'prom-client';
import type { Counters } from './model.js';

export interface StatsMetrics {
  event(kind: string): void;
  malformed(): void;
  reconnect(): void;
  relayed(kind: 'traffic' | 'traffic/peer', c: Counters): void;
  disagreement(): void;
  filled(): void;
}

/** Usage metrics; labelled children are resolved once because they run for every event. */
export function registerStatsMetrics(registry: Registry, openCount: () => number): StatsMetrics {
  const events = new Counter({ name: 'turn_monitor_stats_events_total', help: 'usage events by kind', labelNames: ['kind'], registers: [registry] });
  const malformed = new Counter({ name: 'turn_monitor_stats_malformed_total', help: 'messages that were not valid usage events', registers: [registry] });
  const reconnects = new Counter({ name: 'turn_monitor_redis_reconnects_total', help: 'times the Redis subscriber lost its connection', registers: [registry] });
  const bytes = new Counter({ name: 'turn_monitor_relayed_bytes_total', help: 'relayed bytes by side (client/peer) and direction (rcv/sent), from traffic increments', labelNames: ['side', 'direction'], registers: [registry] });
  const disagreements = new Counter({ name: 'turn_monitor_stats_source_disagreements_total', help: "stats.source 'both': allocations whose redis and log totals differ", registers: [registry] });
  const filled = new Counter({ name: 'turn_monitor_stats_filled_from_log_total', help: "stats.source 'both': allocations whose totals came from the log because redis missed them", registers: [registry] });
  new Gauge({ name: 'turn_monitor_open_allocations', help: 'allocations currently open', registers: [registry], collect() { this.set(openCount()); } });
  const byKind = new Map<string, Counter.Internal>();
  const b = {
    clientRcv: bytes.labels('client', 'rcv'), clientSent: bytes.labels('client', 'sent'),
    peerRcv: bytes.labels('peer', 'rcv'), peerSent: bytes.labels('peer', 'sent'),
  };
  return {
    event(kind) {
      let c = byKind.get(kind);
      if (!c) byKind.set(kind, (c = events.labels(kind)));
      c.inc();
    },
    malformed: () => malformed.inc(),
    reconnect: () => reconnects.inc(),
    disagreement: () => disagreements.inc(),
    filled: () => filled.inc(),
    relayed(kind, c) {
      if (kind === 'traffic') {
        b.clientRcv.inc(c[1]);
        b.clientSent.inc(c[3]);
      } else {
        b.peerRcv.inc(c[1]);
        b.peerSent.inc(c[3]);
      }
    },
  };
}
