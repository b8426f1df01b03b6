import { collectDefaultMetrics, Registry } from 'prom-client';

/**
 * prom-client samples event-loop delay with a repeating timer, every 10 ms by default: on an idle
 * monitor that timer was most of its CPU (README, Performance: idle). Once a second still shows
 * any stall long enough to matter.
 */
const EVENT_LOOP_SAMPLE_MS = 1000;

/** One registry per monitor; subsystems register their own metrics in it. */
export function createRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({
    register: registry,
    prefix: 'turn_monitor_',
    eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS,
  });
  return registry;
}
