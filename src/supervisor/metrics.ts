import { Counter, Gauge, type Registry } from 'prom-client';
import type { TurnserverSupervisor } from './turnserver-supervisor.js';

/** turnserver's state and restarts as Prometheus metrics. */
export function registerSupervisorMetrics(registry: Registry, supervisor: TurnserverSupervisor): void {
  new Gauge({
    name: 'turn_monitor_turnserver_up',
    help: '1 while turnserver answers STUN, else 0',
    registers: [registry],
    collect() {
      this.set(supervisor.isReady ? 1 : 0);
    },
  });
  const restarts = new Counter({
    name: 'turn_monitor_turnserver_restarts_total',
    help: 'turnserver restarts since the monitor started',
    registers: [registry],
  });
  const exits = new Counter({
    name: 'turn_monitor_turnserver_exits_total',
    help: 'turnserver exits by kind (expected stop, crash signal, exit code)',
    labelNames: ['reason'],
    registers: [registry],
  });
  supervisor.on('spawn', () => supervisor.restarts > 0 && restarts.inc());
  supervisor.on('exit', (e: { code: number | null; signal: string | null }) =>
    exits.inc({ reason: e.signal ? `signal:${e.signal}` : `code:${e.code}` }),
  );
}
