import { Counter, type Registry } from 'prom-client';

/** turn_monitor_http_requests_total{route,status,key}: cached children (the credential path counts every request). */
export interface RequestCounter {
  count(route: string, status: number, key: string): void;
}

export function registerHttpMetrics(registry: Registry): RequestCounter {
  const counter = new Counter({
    name: 'turn_monitor_http_requests_total',
    help: 'HTTP API requests answered, by route pattern, status and API key name (bounded by the configured keys; none: no key presented)',
    labelNames: ['route', 'status', 'key'] as const,
    registers: [registry],
  });
  const children = new Map<string, { inc(): void }>();
  return {
    count(route, status, key) {
      const id = `${route}\n${status}\n${key}`;
      let child = children.get(id);
      if (!child) {
        child = counter.labels({ route, status: String(status), key });
        children.set(id, child);
      }
      child.inc();
    },
  };
}
