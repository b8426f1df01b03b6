import { collectDefaultMetrics, Registry } from 'prom-client';

/** One registry per monitor; subsystems register their own metrics in it. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'turn_monitor_' });
  return registry;
}
