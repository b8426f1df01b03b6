import { Counter, Gauge, type Registry } from 'prom-client';
import type { Tls } from './tls.js';

/** The served certificate's expiry and the reloads, as Prometheus metrics. */
export function registerTlsMetrics(registry: Registry, tls: Tls): void {
  if (!tls.enabled) return;
  new Gauge({
    name: 'turn_monitor_tls_cert_expiry_timestamp_seconds',
    help: 'notAfter of the TLS certificate turnserver serves, in seconds since the epoch',
    registers: [registry],
    collect() {
      const c = tls.certificate;
      if (c) this.set(Date.parse(c.notAfter) / 1000);
    },
  });
  const reloads = new Counter({
    name: 'turn_monitor_tls_reloads_total',
    help: 'certificate reloads by result: ok (served), rejected (failed the checks, not loaded), failed (not served after SIGUSR2)',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const result of ['ok', 'rejected', 'failed']) reloads.inc({ result }, 0);
  tls.on('reloaded', () => reloads.inc({ result: 'ok' }));
  tls.on('reload-failed', ({ result }) => reloads.inc({ result }));
}
