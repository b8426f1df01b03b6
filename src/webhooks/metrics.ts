import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { DeliveryResult, EndpointFigures } from './protocol.js';

export interface WebhookMetrics {
  counted(endpoint: string, result: DeliveryResult, n: number): void;
  delivered(seconds: number): void;
}

/**
 * turn_monitor_webhook_deliveries_total{endpoint,result} (attempts: delivered, retry, failed),
 * turn_monitor_webhook_pending{endpoint}, turn_monitor_webhook_failed{endpoint} and
 * turn_monitor_webhook_delivery_seconds (queued → 2xx). `endpoint` is the URL without credentials.
 */
export function registerWebhookMetrics(registry: Registry, figures: () => EndpointFigures[]): WebhookMetrics {
  const deliveries = new Counter({
    name: 'turn_monitor_webhook_deliveries_total',
    help: 'webhook delivery attempts by endpoint and result (delivered: 2xx; retry: to be sent again; failed: given up)',
    labelNames: ['endpoint', 'result'],
    registers: [registry],
  });
  new Gauge({
    name: 'turn_monitor_webhook_pending',
    help: 'webhook events waiting to be delivered, per endpoint',
    labelNames: ['endpoint'],
    registers: [registry],
    collect() {
      for (const f of figures()) this.set({ endpoint: f.name }, f.pending);
    },
  });
  new Gauge({
    name: 'turn_monitor_webhook_failed',
    help: 'webhook events given up on and kept for a replay, per endpoint',
    labelNames: ['endpoint'],
    registers: [registry],
    collect() {
      for (const f of figures()) this.set({ endpoint: f.name }, f.failed);
    },
  });
  const latency = new Histogram({
    name: 'turn_monitor_webhook_delivery_seconds',
    help: 'time from an event being written (or queued again by a replay) to its 2xx',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 86_400],
    registers: [registry],
  });
  return {
    counted: (endpoint, result, n) => deliveries.inc({ endpoint, result }, n),
    delivered: (seconds) => latency.observe(seconds),
  };
}
