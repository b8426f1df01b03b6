// Messages between the webhooks subsystem (main thread) and its delivery thread.

export interface ThreadEndpoint {
  /** Its id in usage.db. */
  id: number;
  /** endpointName(url): shown, and the `endpoint` label. */
  name: string;
  url: string;
  secret: string;
  timeoutMs: number;
}

export interface ThreadConfig {
  file: string;
  /** This host's name in every event. */
  hostId: string;
  endpoints: ThreadEndpoint[];
  maxAgeMs: number;
  retentionMs: number;
  userAgent: string;
  /** How often the outbox is looked at for new events (ms). */
  pollMs: number;
}

/** One endpoint's figures, as /health shows them (times epoch ms). */
export interface EndpointFigures {
  name: string;
  pending: number;
  failed: number;
  oldestPendingAt: number | null;
  lastError: string | null;
  lastDeliveredAt: number | null;
  /** First failure of the current streak (null while it delivers). */
  failingSince: number | null;
}

export type DeliveryResult = 'delivered' | 'retry' | 'failed';

export type ToThread =
  | { type: 'poke' }
  /** The monitor's event loop is saturated (an ingest burst), or not any more. */
  | { type: 'busy'; busy: boolean }
  | { type: 'stop'; drainMs: number };

export type FromThread =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'status'; endpoints: EndpointFigures[] }
  /** Attempts since the last report, by endpoint and result; seconds from queued to 2xx. */
  | { type: 'counts'; counts: [string, DeliveryResult, number][]; latencies: number[] }
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; fields: Record<string, unknown>; msg: string }
  | { type: 'stopped' };
