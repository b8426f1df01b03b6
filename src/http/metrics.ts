import { Counter, type Registry } from 'prom-client';

/** turn_monitor_http_requests_total{route,status,key}, counted in plain numbers (the credential path counts every request). */
export interface RequestCounter {
  count(route: string, status: number, key: string): void;
}

interface Cell {
  labels: { route: string; status: string; key: string };
  n: number;
}

export function registerHttpMetrics(registry: Registry): RequestCounter {
  // prom-client hashes and validates the labels on every inc(), even a child's: a few
  // microseconds per credential answer (bench credential_api). Requests are counted here and
  // handed to the counter when it is scraped.
  const cells = new Map<string, Cell>();
  new Counter({
    name: 'turn_monitor_http_requests_total',
    help: 'HTTP API requests answered, by route pattern, status and API key name (bounded by the configured keys; none: no key presented)',
    labelNames: ['route', 'status', 'key'] as const,
    registers: [registry],
    collect() {
      for (const c of cells.values())
        if (c.n > 0) {
          this.inc(c.labels, c.n);
          c.n = 0;
        }
    },
  });
  return {
    count(route, status, key) {
      const id = `${route}\n${status}\n${key}`;
      const cell = cells.get(id);
      if (cell) cell.n++;
      else cells.set(id, { labels: { route, status: String(status), key }, n: 1 });
    },
  };
}
