import { Gauge, type Registry } from 'prom-client';
import type { Drain } from './drain.js';

export function registerDrainMetrics(registry: Registry, drain: Drain): void {
  new Gauge({
    name: 'turn_monitor_draining',
    help: '1 while the host drains (no new allocations, waiting for the open ones), else 0',
    registers: [registry],
    collect() {
      this.set(drain.draining ? 1 : 0);
    },
  });
}
