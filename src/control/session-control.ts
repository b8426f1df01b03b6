import { Counter, type Registry } from 'prom-client';
import type { Admin, AdminStatus, CliSession } from '../admin/admin.js';
import type { Credentials } from '../credentials/credentials.js';
import type { Subsystem, SubsystemHealth } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import { clientIdOf } from '../stats/client-id.js';
import { finalCounters, type AllocationRecord } from '../stats/allocation-record.js';
import type { UsagePipeline } from '../stats/pipeline.js';

/** One live allocation: what coturn's CLI says of it, and the counters the monitor has recorded. */

/** Why the monitor ended an allocation through the admin channel (its record's end reason). */
type EndReason = 'disconnected' | 'revoked' | 'drained';

export interface SessionView {
  allocationId: string;
  realm: string | null;
  username: string;
  clientId: string;
  startedAt: string;
  expiresInSec: number | null;
  clientProtocol: string | null;
  relayProtocol: string | null;
  clientAddr: string | null;
  serverAddr: string | null;
  relayAddr: string | null;
  peers: string[];
  /** coturn's current rates, bytes per second. */
  rate: { r: number; s: number; total: number } | null;
  /** coturn's own usage counters (they lag behind). */
  coturnUsage: { rp: number; rb: number; sp: number; sb: number } | null;
  /** The stats model's counters (exact; null when the monitor has no record of it). */
  counters: Record<
    'rcvp' | 'rcvb' | 'sentp' | 'sentb' | 'peerRcvp' | 'peerRcvb' | 'peerSentp' | 'peerSentb',
    number
  > | null;
}

export interface SessionFilter {
  /** Exact username. */
  user?: string;
  /** Exact client id (the part after the REST timestamp). */
  clientId?: string;
}

/** The fleet deny list as control sees it (fleet-deny.ts): write what is unsynced now. */
export interface FleetDenySync {
  sync(reason?: string): Promise<void>;
}

/** How long a revoke waits for ZooKeeper before it answers with the entry queued. */
const FLEET_WRITE_WAIT_MS = 2000;

export interface ControlDeps {
  admin: Admin;
  credentials: Credentials;
  /** With `zookeeper.connect` (secret mode): revokes and lifts are fleet state. */
  fleet?: FleetDenySync | null;
  pipeline: UsagePipeline;
  registry: Registry;
  logger: Logger;
  now: () => number;
}

/** Usernames of a revoked userdb credential: allocations still appearing with them are cancelled for this long. */
const REVOKED_USER_WATCH_MS = 120_000;

/**
 * Live control over coturn, built from the admin channel, the credentials and the usage model:
 * listing sessions, disconnecting one, revoking a client (secret mode) or the shared credential
 * (userdb mode), and enforcing the deny list on allocations as they appear.
 */
export class SessionControl implements Subsystem {
  readonly name = 'sessions';
  private readonly log: Logger;
  private readonly disconnects: Counter;
  private unsubscribe: (() => void) | null = null;
  private readonly revokedUsers = new Map<string, number>();

  constructor(private readonly deps: ControlDeps) {
    this.log = deps.logger.child({ component: 'sessions' });
    this.disconnects = new Counter({
      name: 'turn_monitor_disconnects_total',
      help: 'allocations the monitor cancelled, by reason (disconnected, revoked)',
      labelNames: ['reason'],
      registers: [deps.registry],
    });
  }

  async start(): Promise<void> {
    this.unsubscribe = this.deps.pipeline.onNewAllocation(this.onNew);
    this.deps.admin.on('status', this.onAdminStatus);
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    this.unsubscribe = null;
    this.deps.admin.off('status', this.onAdminStatus);
  }

  health(): SubsystemHealth {
    return { status: 'ok', revokedClients: this.deps.credentials.denyList.active(this.deps.now()).length };
  }

  /** A client or user that must not hold allocations right now. */
  private denied(username: string): boolean {
    const at = this.revokedUsers.get(username);
    if (at !== undefined && this.deps.now() - at < REVOKED_USER_WATCH_MS) return true;
    return this.deps.credentials.revoked(clientIdOf(username)) !== null;
  }

  /** A new allocation of a revoked client (a credential it fetched before the revoke): cancel it now. */
  private readonly onNew = (r: AllocationRecord): void => {
    if (r.kind !== 'allocation' || !this.denied(r.username)) return;
    this.log.warn(
      { event: 'revoked-allocation', allocationId: r.allocationId, clientId: r.clientId },
      'allocation of a revoked client: cancelling',
    );
    void this.cancel([r.allocationId], 'revoked').catch((err: Error) =>
      this.log.error(
        { event: 'cancel-failed', allocationId: r.allocationId, err: err.message },
        'cancelling a revoked allocation failed: retried when the admin channel reconnects',
      ),
    );
  };

  /** After every (re)connect, e.g. a turnserver restart during a revoke: cancel whatever revoked clients hold. */
  private readonly onAdminStatus = (s: AdminStatus): void => {
    if (s !== 'connected') return;
    const now = this.deps.now();
    for (const [user, at] of this.revokedUsers) if (now - at >= REVOKED_USER_WATCH_MS) this.revokedUsers.delete(user);
    if (this.deps.credentials.denyList.active(now).length === 0 && this.revokedUsers.size === 0) return;
    void (async () => {
      const live = await this.deps.admin.sessions();
      const ids = live.filter((x) => this.denied(x.username)).map((x) => x.allocationId);
      if (ids.length > 0) {
        await this.cancel(ids, 'revoked');
        this.log.warn(
          { event: 'revoke-applied', count: ids.length },
          'cancelled allocations of revoked clients after reconnecting',
        );
      }
    })().catch((err: Error) =>
      this.log.error({ event: 'revoke-sweep-failed', err: err.message }, 'could not apply revokes after reconnecting'),
    );
  };

  private async cancel(ids: string[], reason: EndReason): Promise<void> {
    for (const id of ids) this.deps.pipeline.markEnding(id, reason);
    await this.deps.admin.cancelMany(ids);
    this.disconnects.labels(reason).inc(ids.length);
  }

  async list(filter: SessionFilter = {}): Promise<SessionView[]> {
    const { admin } = this.deps;
    let live: CliSession[];
    if (filter.user !== undefined)
      live = (await admin.sessions({ usernamePart: filter.user })).filter((s) => s.username === filter.user);
    else if (filter.clientId !== undefined) live = await admin.sessions({ usernamePart: filter.clientId });
    else live = await admin.sessions();
    if (filter.clientId !== undefined) live = live.filter((s) => clientIdOf(s.username) === filter.clientId);
    const now = this.deps.now();
    return live.map((s) => this.view(s, now));
  }

  private view(s: CliSession, now: number): SessionView {
    const r = this.deps.pipeline.openRecord(s.allocationId);
    const counters = r ? finalCounters(r) : null;
    const startedAt = r?.startedAt ?? now - (s.startedSecsAgo ?? 0) * 1000;
    return {
      allocationId: s.allocationId,
      realm: s.realm,
      username: s.username,
      clientId: clientIdOf(s.username),
      startedAt: new Date(startedAt).toISOString(),
      expiresInSec: s.expiresInSec,
      clientProtocol: s.clientProtocol,
      relayProtocol: s.relayProtocol,
      clientAddr: s.clientAddr,
      serverAddr: s.serverAddr,
      relayAddr: s.relayAddr,
      peers: s.peers,
      rate: s.rate,
      coturnUsage: s.usage,
      counters: counters && {
        rcvp: counters.client[0],
        rcvb: counters.client[1],
        sentp: counters.client[2],
        sentb: counters.client[3],
        peerRcvp: counters.peer[0],
        peerRcvb: counters.peer[1],
        peerSentp: counters.peer[2],
        peerSentb: counters.peer[3],
      },
    };
  }

  /** Cancel one live allocation; false when coturn has none of that id. */
  /**
   * After adopting a turnserver with the Redis source alone, events published while no monitor
   * ran are lost: allocations coturn no longer lists ended then. They close at their last
   * checkpoint, incomplete, with end reason `ended-unmonitored`.
   */
  async closeUnlisted(): Promise<number> {
    const live = new Set((await this.deps.admin.sessions()).map((s) => s.allocationId));
    const closed = this.deps.pipeline.closeUnlisted(live, 'ended-unmonitored');
    if (closed > 0)
      this.log.warn(
        { event: 'closed-unlisted', count: closed },
        'allocations that ended while no monitor ran were closed from the last checkpoint',
      );
    return closed;
  }

  /** A drain's deadline passed: cancel what is left (end reason `drained`, totals from coturn's delete events). */
  async drainCancel(allocationIds: string[]): Promise<void> {
    await this.cancel(allocationIds, 'drained');
  }

  async disconnect(allocationId: string): Promise<boolean> {
    const live = await this.deps.admin.sessions();
    if (!live.some((s) => s.allocationId === allocationId)) return false;
    await this.cancel([allocationId], 'disconnected');
    this.log.warn({ event: 'disconnected', allocationId }, 'allocation disconnected on request');
    return true;
  }

  /**
   * Secret mode: deny the client (persisted first, so it holds through a turnserver restart or an
   * admin channel outage) and cancel every allocation it holds. Rejects with AdminUnavailableError
   * when the channel cannot answer: the deny list then applies once it is back.
   */
  async revokeClient(
    clientId: string,
    opts: { reason?: 'revoked' | 'quota'; until?: number } = {},
  ): Promise<{ cancelled: number; until: string; fleet: 'written' | 'queued' | null }> {
    const entry = await this.deps.credentials.revokeClient(clientId, opts);
    // The fleet write runs beside the local cut (it never rejects: a failure leaves it queued).
    const fleet = this.toFleet(() => this.deps.credentials.unsynced().writes.some((d) => d.clientId === clientId));
    const cancelled = await this.cancelClients([clientId]);
    return { cancelled, until: new Date(entry.until).toISOString(), fleet: await fleet };
  }

  /** Fleet mode: write to ZooKeeper now (bounded); whether it is still pending after. */
  private async toFleet(pending: () => boolean): Promise<'written' | 'queued' | null> {
    const fleet = this.deps.fleet;
    if (!fleet) return null;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([fleet.sync('revoke'), new Promise((r) => (timer = setTimeout(r, FLEET_WRITE_WAIT_MS)))]);
    clearTimeout(timer);
    return pending() ? 'queued' : 'written';
  }

  /** Cancel every live allocation of these client ids (a deny entry that reached this host). */
  async cancelClients(clientIds: string[]): Promise<number> {
    const want = new Set(clientIds);
    const live =
      clientIds.length === 1
        ? await this.deps.admin.sessions({ usernamePart: clientIds[0] })
        : await this.deps.admin.sessions();
    const ids = live.filter((s) => want.has(clientIdOf(s.username))).map((s) => s.allocationId);
    if (ids.length > 0) await this.cancel(ids, 'revoked');
    return ids.length;
  }

  /** Deny entries read from the fleet list: cut the clients' allocations here (logged, never thrown). */
  applyFleetEntries(clientIds: string[]): void {
    // Not connected yet (start-up, a turnserver restart): the sweep after the connect cuts them.
    if (this.deps.admin.status !== 'connected') return;
    this.cancelClients(clientIds)
      .then((n) => {
        if (n > 0)
          this.log.warn(
            { event: 'fleet-deny-cut', clientIds, cancelled: n },
            'cancelled allocations of clients denied fleet-wide',
          );
      })
      .catch((err: Error) =>
        this.log.error(
          { event: 'cancel-failed', clientIds, err: err.message },
          'cancelling allocations of denied clients failed: retried when the admin channel reconnects',
        ),
      );
  }

  async liftRevoke(clientId: string): Promise<boolean> {
    const had = await this.deps.credentials.liftRevoke(clientId);
    await this.toFleet(() => this.deps.credentials.unsynced().lifts.includes(clientId));
    return had;
  }

  /** userdb mode: new credential, old users deleted, and every allocation made with them cancelled. */
  async revokeCredential(): Promise<{ cancelled: number; users: string[] }> {
    const users = await this.deps.credentials.revokeCredential();
    const now = this.deps.now();
    for (const u of users) this.revokedUsers.set(u, now);
    const live = await this.deps.admin.sessions();
    const ids = live.filter((s) => users.includes(s.username)).map((s) => s.allocationId);
    await this.cancel(ids, 'revoked');
    return { cancelled: ids.length, users };
  }
}
