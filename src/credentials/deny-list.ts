import { Gauge, type Registry } from 'prom-client';
import type { DeniedClient } from './state-store.js';

/** turn_monitor_revoked_clients: client ids on the deny list now. */
export function registerDenyListGauge(registry: Registry, count: () => number): void {
  new Gauge({
    name: 'turn_monitor_revoked_clients',
    help: 'client ids on the deny list (secret mode)',
    registers: [registry],
    collect() {
      this.set(count());
    },
  });
}

export interface DenyOptions {
  until?: number;
  reason?: DeniedClient['reason'];
  by?: string | null;
  unsynced?: boolean;
}

/**
 * The deny list after a read of the fleet's (ZooKeeper's) entries: theirs, except that an entry
 * made here and not yet written there wins over an older one, and a lift not yet written there
 * keeps its client off. Pure (unit-tested).
 */
export function mergeFleet(
  local: DeniedClient[],
  remote: DeniedClient[],
  liftsUnsynced: readonly string[],
  now: number,
): DeniedClient[] {
  const lifted = new Set(liftsUnsynced);
  const next = new Map<string, DeniedClient>();
  for (const r of remote) if (r.until > now && !lifted.has(r.clientId)) next.set(r.clientId, { ...r, unsynced: false });
  for (const l of local) {
    if (!l.unsynced || l.until <= now) continue;
    const r = next.get(l.clientId);
    if (!r || r.revokedAt <= l.revokedAt) next.set(l.clientId, l);
  }
  return [...next.values()].sort((a, b) => a.clientId.localeCompare(b.clientId));
}

/**
 * Revoked client ids (secret mode). A client stays denied until every credential issued to it
 * before the revoke has expired (revokedAt + validitySec): until then a credential it still holds
 * would authenticate, so its new allocations must be cancelled as they appear. The entries live
 * in the credential state (credential.json, 0600); this class only decides on them.
 */
export class DenyList {
  constructor(
    private readonly entries: () => DeniedClient[],
    private readonly setEntries: (e: DeniedClient[]) => void,
    private readonly validityMs: number,
  ) {}

  /** The entry for a client still denied at `now`, else null. */
  find(clientId: string, now: number): DeniedClient | null {
    return this.entries().find((d) => d.clientId === clientId && d.until > now) ?? null;
  }

  /** Deny a client (again): its window starts now (and ends `until`, default now + validity). */
  add(clientId: string, now: number, opts: DenyOptions = {}): DeniedClient {
    const entry: DeniedClient = {
      clientId,
      revokedAt: now,
      until: opts.until ?? now + this.validityMs,
      reason: opts.reason ?? 'revoked',
      by: opts.by ?? null,
      unsynced: opts.unsynced ?? false,
    };
    this.setEntries([...this.entries().filter((d) => d.clientId !== clientId), entry]);
    return entry;
  }

  /** Lift a revoke; false when the client was not denied. */
  remove(clientId: string, now: number): boolean {
    const had = this.find(clientId, now) !== null;
    this.setEntries(this.entries().filter((d) => d.clientId !== clientId));
    return had;
  }

  /** Drop entries whose window ended; true when something was dropped. */
  prune(now: number): boolean {
    const kept = this.entries().filter((d) => d.until > now);
    if (kept.length === this.entries().length) return false;
    this.setEntries(kept);
    return true;
  }

  active(now: number): DeniedClient[] {
    return this.entries().filter((d) => d.until > now);
  }

  nextExpiry(): number | null {
    const all = this.entries().map((d) => d.until);
    return all.length ? Math.min(...all) : null;
  }
}
