import type { UsageView } from './context.js';
import type { Credentials } from './credentials/credentials.js';
import type { Drain } from './drain/drain.js';
import type { TurnserverSupervisor } from './supervisor/turnserver-supervisor.js';
import type { Tls } from './tls/tls.js';
import type { Webhooks } from './webhooks/webhooks.js';

export interface WebhookSources {
  supervisor: TurnserverSupervisor;
  drain: Drain;
  credentials: Credentials;
  tls: Tls;
  usage: UsageView;
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Part of the composition root: the events the subsystems emit become webhook events. (Allocation
 * events need no wiring: usage.db's triggers write them with the record.) Each kind has an order
 * key, so a receiver gets `host.draining` before `host.drained`, an exit before the next ready.
 */
export function wireWebhooks(webhooks: Webhooks, s: WebhookSources): void {
  if (!webhooks.enabled) return;
  // Before the stats subsystem's own listener closes that run's allocations: they are still open here.
  s.supervisor.prependListener('exit', (exit) =>
    webhooks.record(
      'turnserver.exited',
      {
        runId: exit.runId,
        pid: exit.pid,
        code: exit.code,
        signal: exit.signal,
        planned: exit.planned,
        wasReady: exit.wasReady,
        openAllocationsClosed: s.usage.openAllocationCount(),
        exitedAt: exit.at.toISOString(),
      },
      { key: exit.runId, order: 'turnserver', at: exit.at.getTime() },
    ),
  );
  s.supervisor.on('ready', (run) =>
    webhooks.record(
      'turnserver.ready',
      { runId: run.runId, pid: run.pid, adopted: run.adopted === true, startedAt: run.startedAt.toISOString() },
      { order: 'turnserver' },
    ),
  );
  s.drain.on('started', (d) =>
    webhooks.record(
      'host.draining',
      { since: d.since, deadline: d.deadline, openAllocations: d.openAllocations, then: d.then },
      { key: d.since, order: 'host' },
    ),
  );
  s.drain.on('finished', (o) =>
    webhooks.record('host.drained', { then: o.then, cancelled: o.cancelled, aborted: o.aborted }, { order: 'host' }),
  );
  // A quota's denial is told by quota.exceeded (its lift by quota.reset).
  s.credentials.on(
    'client-revoked',
    (d) =>
      d.reason === 'revoked' &&
      webhooks.record(
        'client.revoked',
        { clientId: d.clientId, revokedAt: iso(d.revokedAt), until: iso(d.until) },
        { key: `${d.clientId}\n${d.revokedAt}`, order: `client:${d.clientId}`, at: d.revokedAt },
      ),
  );
  s.credentials.on(
    'client-unrevoked',
    (d) =>
      d.reason !== 'quota' &&
      webhooks.record('client.unrevoked', { clientId: d.clientId }, { order: `client:${d.clientId}`, at: d.at }),
  );
  s.credentials.on('credential-revoked', (d) =>
    webhooks.record('credential.revoked', { revokedUsers: d.users }, { order: 'credential', at: d.at }),
  );
  s.tls.on('reloaded', (c) =>
    webhooks.record(
      'certificate.reloaded',
      { subject: c.subject, names: c.names, notBefore: c.notBefore, notAfter: c.notAfter, fingerprint: c.fingerprint },
      { key: c.fingerprint, order: 'certificate' },
    ),
  );
  // Said every hour while it lasts: one event a day (certificate, UTC day); a restart on the same
  // day sends it again with the same id (receivers deduplicate).
  let lastExpiring = '';
  s.tls.on('expiring', (c) => {
    const key = `${c.fingerprint}\n${new Date().toISOString().slice(0, 10)}`;
    if (key === lastExpiring) return;
    lastExpiring = key;
    webhooks.record(
      'certificate.expiring',
      {
        subject: c.subject,
        names: c.names,
        notAfter: c.notAfter,
        fingerprint: c.fingerprint,
        daysLeft: c.daysLeft,
        warnDays: c.warnDays,
      },
      { key, order: 'certificate' },
    );
  });
}
