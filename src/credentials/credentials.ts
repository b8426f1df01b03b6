import { createHmac, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { Counter } from 'prom-client';
import type { AppContext } from '../context.js';
import type { Subsystem, SubsystemHealth, TurnConfContributor } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import { turnUrisFor } from '../util/addresses.js';
import { Backoff } from '../process/backoff.js';
import { DenyList, mergeFleet, registerDenyListGauge, type DenyOptions } from './deny-list.js';
import { loadState, saveState, type CredentialEntry, type CredentialState, type DeniedClient } from './state-store.js';
import { Turnadmin } from './turnadmin.js';

/**
 * What GET /turncredential returns: the fields our signalling servers already read (type, code,
 * userid, password, expired_time), the TURN REST draft's and WebRTC's iceServers.
 */
export interface CredentialResponse {
  type: 'result';
  code: 'ok';
  userid: string;
  username: string;
  password: string;
  expired_time: number;
  ttl: number;
  uris: string[];
  iceServers: { urls: string[]; username: string; credential: string }[];
}

/** What credentials report as it happens (the root turns them into webhook events). */
export interface CredentialsEvents {
  /** Secret mode: a client id went on the deny list. */
  'client-revoked': [DeniedClient];
  /** Secret mode: a revoke was lifted. */
  'client-unrevoked': [{ clientId: string; at: number; reason: DeniedClient['reason'] | null }];
  /** userdb mode: these users were deleted from the userdb at once (a leaked shared credential). */
  'credential-revoked': [{ users: string[]; at: number }];
}

const randomToken = (bytes: number) => randomBytes(bytes).toString('base64url');
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Rotates the TURN credential through turnadmin on coturn's SQLite userdb. Mode `userdb`: a
 * random user every rotateIntervalSec, valid for validitySec. Mode `secret`: a REST-API shared
 * secret rotated likewise and kept until every credential issued with it has expired.
 * State persists in dataDir/credential.json so a restarted monitor serves the same credential.
 */
export class Credentials extends EventEmitter<CredentialsEvents> implements Subsystem, TurnConfContributor {
  readonly name = 'credentials';
  private state: CredentialState;
  private readonly turnadmin: Turnadmin;
  private readonly stateFile: string;
  private readonly log: Logger;
  private readonly backoff = new Backoff(1000, 60_000);
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastError: string | null = null;
  private lastRotationAt: number | null = null;
  private readonly rotations: Counter;
  private readonly uris: string[];
  private readonly failures: Counter;
  /** Every change of state and userdb runs in turn on this chain; stop() waits for it. */
  private work: Promise<unknown> = Promise.resolve();
  private lastJson: { username: string; password: string; expiresAt: number; ttl: number; json: string } | null = null;
  /** Secret mode: revoked client ids, kept in the state file. */
  readonly denyList: DenyList;

  /** Secret mode with ZooKeeper: the deny list is fleet state (fleet-deny.ts writes and reads it). */
  readonly fleetMode: boolean;

  constructor(
    private readonly ctx: AppContext,
    /** This host's name, as `by` of the deny entries it makes. */
    private readonly hostId: string | null = null,
  ) {
    super();
    this.fleetMode = ctx.config.credentials.mode === 'secret' && ctx.config.zookeeper.connect !== null;
    const { config } = ctx;
    this.log = ctx.logger.child({ component: 'credentials' });
    this.stateFile = path.join(config.dataDir, 'credential.json');
    this.turnadmin = new Turnadmin(
      config.credentials.turnadmin,
      path.join(config.dataDir, 'turndb'),
      config.turnserver.realm,
      (call) => this.log.debug({ event: 'turnadmin-call', ...call }, 'turnadmin called'),
    );
    this.state = this.emptyState();
    this.uris = turnUrisFor(config, hostname());
    this.rotations = new Counter({
      name: 'turn_monitor_credential_rotations_total',
      help: 'credential rotations',
      registers: [ctx.registry],
    });
    this.failures = new Counter({
      name: 'turn_monitor_turnadmin_failures_total',
      help: 'failed turnadmin calls',
      registers: [ctx.registry],
    });
    this.denyList = new DenyList(
      () => this.state.denied,
      (d) => (this.state.denied = d),
      this.validityMs,
    );
    registerDenyListGauge(ctx.registry, () => this.denyList.active(ctx.now()).length);
  }

  private get mode() {
    return this.ctx.config.credentials.mode;
  }
  private get validityMs() {
    return this.ctx.config.credentials.validitySec * 1000;
  }
  private get rotateMs() {
    return this.ctx.config.credentials.rotateIntervalSec * 1000;
  }
  private emptyState(): CredentialState {
    return {
      version: 1,
      mode: this.mode,
      realm: this.ctx.config.turnserver.realm,
      entries: [],
      denied: [],
      liftsUnsynced: [],
    };
  }

  turnConfLines(): string[] {
    // Secrets come from the userdb's turn_secret table; every secret of the realm is tried.
    if (this.mode !== 'secret') return [];
    // coturn counts user-quota per username with the REST timestamp stripped: per client id.
    const quota = this.ctx.config.credentials.maxAllocationsPerClient;
    return quota === null ? ['use-auth-secret'] : ['use-auth-secret', `user-quota=${quota}`];
  }

  async start(): Promise<void> {
    await mkdir(this.ctx.config.dataDir, { recursive: true });
    const loaded = await loadState(this.stateFile);
    if (loaded.state && loaded.state.mode === this.mode && loaded.state.realm === this.ctx.config.turnserver.realm) {
      this.state = loaded.state;
    } else if (loaded.state) {
      this.log.warn({ event: 'state-discarded' }, 'credential state is for another mode or realm: starting fresh');
    } else if (loaded.problem) {
      this.log.error(
        { event: 'state-corrupt', problem: loaded.problem },
        'credential state unreadable: making a fresh credential',
      );
    }
    // Re-add what is still valid: the userdb may have been replaced since the state was written.
    await this.exclusive(() => this.reconcile(true));
  }

  /** Run one change after the previous one, so a rotation, a revoke and the timer never interleave. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.work.then(fn, fn);
    this.work = run.catch(() => {});
    return run;
  }

  /** Bring the userdb in line with the state: expire old entries, rotate when due, schedule next. */
  private async reconcile(resync = false): Promise<void> {
    if (this.stopped) return;
    try {
      const now = this.ctx.now();
      if (resync) for (const e of this.valid(now)) await this.add(e);
      for (const e of this.state.entries.filter((x) => x.expiresAt !== null && x.expiresAt <= now))
        await this.remove(e);
      const current = this.current(now);
      if (!current || now - current.issuedAt >= this.rotateMs) await this.rotate();
      if (this.denyList.prune(now)) {
        await saveState(this.stateFile, this.state);
        this.log.info(
          { event: 'revoke-expired' },
          'a revoked client left the deny list: its credentials have all expired',
        );
      }
      this.lastError = null;
      this.backoff.reset();
      this.schedule(this.nextDue());
    } catch (err) {
      this.failures.inc();
      this.lastError = (err as Error).message;
      const retryMs = this.backoff.next();
      this.log.error(
        { event: 'turnadmin-failed', err: this.lastError, retryMs },
        'credential update failed: serving the previous credential, will retry',
      );
      this.schedule(retryMs);
    }
  }

  private valid(now: number): CredentialEntry[] {
    return this.state.entries.filter((e) => e.expiresAt === null || e.expiresAt > now);
  }

  private current(now: number): CredentialEntry | null {
    const last = this.state.entries.at(-1);
    return last && (last.expiresAt === null || last.expiresAt > now) ? last : null;
  }

  private async add(e: CredentialEntry): Promise<void> {
    if (this.mode === 'userdb') await this.turnadmin.addUser(e.id, e.secret);
    else await this.turnadmin.addSecret(e.secret);
  }

  private async remove(e: CredentialEntry): Promise<void> {
    if (this.mode === 'userdb') await this.turnadmin.deleteUser(e.id);
    else await this.turnadmin.deleteSecret(e.secret);
    this.state.entries = this.state.entries.filter((x) => x !== e);
    await saveState(this.stateFile, this.state);
    this.log.info({ event: 'expired', id: e.id }, 'expired credential removed from the userdb');
  }

  /** Make a new credential now (also the revoke button: POST /turncredential/rotate). */
  private async rotate(): Promise<void> {
    const now = this.ctx.now();
    const entry: CredentialEntry =
      this.mode === 'userdb'
        ? { id: `tm-${randomToken(9)}`, secret: randomToken(24), issuedAt: now, expiresAt: now + this.validityMs }
        : { id: `secret-${now}`, secret: randomToken(32), issuedAt: now, expiresAt: null };
    await this.add(entry);
    // The previous REST secret stays until every credential issued with it has expired.
    for (const e of this.state.entries) if (e.expiresAt === null) e.expiresAt = now + this.validityMs;
    this.state.entries.push(entry);
    await saveState(this.stateFile, this.state);
    this.lastRotationAt = now;
    this.rotations.inc();
    this.log.info({ event: 'rotated', id: entry.id, mode: this.mode }, 'new credential issued');
  }

  /** Rotate on request, then resume the schedule; errors reach the caller. */
  rotateNow(): Promise<void> {
    return this.exclusive(() => this.rotateAndReschedule());
  }

  private async rotateAndReschedule(): Promise<void> {
    try {
      await this.rotate();
      this.lastError = null;
      this.schedule(this.nextDue());
    } catch (err) {
      this.failures.inc();
      this.lastError = (err as Error).message;
      this.schedule(this.backoff.next()); // the scheduled path retries and clears the error
      throw err;
    }
  }

  private nextDue(): number {
    const now = this.ctx.now();
    const due = this.state.entries.flatMap((e) => (e.expiresAt === null ? [] : [e.expiresAt]));
    const current = this.state.entries.at(-1);
    if (current) due.push(current.issuedAt + this.rotateMs);
    const denyEnds = this.denyList.nextExpiry();
    if (denyEnds !== null) due.push(denyEnds);
    return Math.max(50, Math.min(...due) - now);
  }

  private schedule(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.exclusive(() => this.reconcile()), Math.min(delayMs, MAX_TIMER_MS));
  }

  /** Secret mode: the deny entry of a revoked client id, else null. */
  revoked(clientId: string): DeniedClient | null {
    return this.mode === 'secret' ? this.denyList.find(clientId, this.ctx.now()) : null;
  }

  /**
   * Secret mode: put a client on the deny list (persisted before it resolves). A revoke lasts
   * until every credential issued before it has expired; a quota passes its own `until`. In fleet
   * mode the entry is marked unsynced until ZooKeeper has it.
   */
  async revokeClient(clientId: string, opts: Omit<DenyOptions, 'unsynced'> = {}): Promise<DeniedClient> {
    if (this.mode !== 'secret') throw new Error('revoking a client needs credentials.mode "secret"');
    return this.exclusive(() => this.deny(clientId, opts));
  }

  private async deny(clientId: string, opts: Omit<DenyOptions, 'unsynced'>): Promise<DeniedClient> {
    const entry = this.denyList.add(clientId, this.ctx.now(), {
      ...opts,
      by: opts.by ?? this.hostId,
      unsynced: this.fleetMode,
    });
    this.state.liftsUnsynced = this.state.liftsUnsynced.filter((c) => c !== clientId);
    await saveState(this.stateFile, this.state);
    this.schedule(this.nextDue());
    this.log.warn(
      { event: 'client-revoked', clientId, reason: entry.reason, until: new Date(entry.until).toISOString() },
      'client revoked',
    );
    this.emit('client-revoked', entry);
    return entry;
  }

  /** Lift a client's revoke; false when it was not revoked (in fleet mode the lift goes to ZooKeeper either way). */
  liftRevoke(clientId: string): Promise<boolean> {
    return this.exclusive(() => this.lift(clientId));
  }

  private async lift(clientId: string): Promise<boolean> {
    const was = this.denyList.find(clientId, this.ctx.now());
    this.denyList.remove(clientId, this.ctx.now());
    if (this.fleetMode && !this.state.liftsUnsynced.includes(clientId)) this.state.liftsUnsynced.push(clientId);
    await saveState(this.stateFile, this.state);
    if (was) {
      this.log.warn({ event: 'revoke-lifted', clientId, reason: was.reason }, 'client revoke lifted');
      this.emit('client-unrevoked', { clientId, at: this.ctx.now(), reason: was.reason });
    }
    return was !== null;
  }

  /** Fleet mode: what ZooKeeper has not got yet (entries made here, lifts made here). */
  unsynced(): { writes: DeniedClient[]; lifts: string[] } {
    return { writes: this.state.denied.filter((d) => d.unsynced), lifts: [...this.state.liftsUnsynced] };
  }

  /** ZooKeeper has this entry (same revokedAt) or this lift: no longer pending. */
  markSynced(what: { write: DeniedClient } | { lift: string }): Promise<void> {
    return this.exclusive(async () => {
      if ('write' in what) {
        const e = this.state.denied.find((d) => d.clientId === what.write.clientId && d.unsynced);
        if (!e || e.revokedAt !== what.write.revokedAt) return;
        e.unsynced = false;
      } else {
        if (!this.state.liftsUnsynced.includes(what.lift)) return;
        this.state.liftsUnsynced = this.state.liftsUnsynced.filter((c) => c !== what.lift);
      }
      await saveState(this.stateFile, this.state);
    });
  }

  /**
   * Fleet mode: the entries ZooKeeper holds now become the local copy (see mergeFleet); resolves
   * with what newly denies a client here (to cut its allocations) and the client ids lifted.
   */
  applyFleet(remote: DeniedClient[]): Promise<{ added: DeniedClient[]; lifted: string[] }> {
    return this.exclusive(async () => {
      const now = this.ctx.now();
      const before = new Map(this.denyList.active(now).map((d) => [d.clientId, d]));
      const next = mergeFleet(this.state.denied, remote, this.state.liftsUnsynced, now);
      const added = next.filter((d) => {
        const b = before.get(d.clientId);
        return !b || b.revokedAt !== d.revokedAt || b.until !== d.until;
      });
      const kept = new Set(next.map((d) => d.clientId));
      const lifted = [...before.keys()].filter((c) => !kept.has(c));
      const same = JSON.stringify(next) === JSON.stringify(this.state.denied);
      if (same) return { added: [], lifted: [] };
      this.state.denied = next;
      await saveState(this.stateFile, this.state);
      this.schedule(this.nextDue());
      return { added, lifted };
    });
  }

  /**
   * userdb mode: make a new credential and delete every older user from the userdb at once.
   * Resolves with the deleted user names (their live allocations are the caller's to cancel:
   * coturn keeps a session's key, so deleting a user ends nothing by itself).
   */
  async revokeCredential(): Promise<string[]> {
    if (this.mode !== 'userdb') throw new Error('revoking the shared credential needs credentials.mode "userdb"');
    return this.exclusive(() => this.replaceAll());
  }

  private async replaceAll(): Promise<string[]> {
    await this.rotateAndReschedule();
    const current = this.state.entries.at(-1)!;
    const old = this.state.entries.filter((e) => e !== current);
    for (const e of old) await this.remove(e);
    this.log.warn(
      { event: 'credential-revoked', users: old.map((e) => e.id) },
      'previous credentials deleted from the userdb',
    );
    this.emit('credential-revoked', { users: old.map((e) => e.id), at: this.ctx.now() });
    return old.map((e) => e.id);
  }

  /** The credential for one request; null when none is valid (turnadmin kept failing). */
  issue(clientId: string | null): CredentialResponse | null {
    const now = this.ctx.now();
    const current = this.current(now);
    if (!current) return null;
    const uris = this.uris;
    let username: string;
    let password: string;
    let expiresAt: number;
    if (this.mode === 'userdb') {
      username = current.id;
      password = current.secret;
      expiresAt = current.expiresAt ?? now;
    } else {
      const expirySec = Math.floor(now / 1000) + this.ctx.config.credentials.validitySec;
      username = `${expirySec}:${clientId ?? `anon-${randomToken(6)}`}`;
      password = createHmac('sha1', current.secret).update(username).digest('base64');
      expiresAt = expirySec * 1000;
    }
    return {
      type: 'result',
      code: 'ok',
      userid: username,
      username,
      password,
      expired_time: expiresAt,
      ttl: Math.max(0, Math.floor((expiresAt - now) / 1000)),
      uris,
      iceServers: [{ urls: uris, username, credential: password }],
    };
  }

  /**
   * issue() as the JSON text GET /turncredential sends. The answer is a function of username,
   * password, expiry and ttl (uris are fixed), so the text is reused while those stay the same:
   * in userdb mode that is every request of the same second.
   */
  issueJson(clientId: string | null): string | null {
    const c = this.issue(clientId);
    if (!c) return null;
    const m = this.lastJson;
    if (
      m &&
      m.username === c.username &&
      m.password === c.password &&
      m.expiresAt === c.expired_time &&
      m.ttl === c.ttl
    )
      return m.json;
    const json = JSON.stringify(c);
    this.lastJson = { username: c.username, password: c.password, expiresAt: c.expired_time, ttl: c.ttl, json };
    return json;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // A turnadmin call under way finishes and its state is saved: no user in the userdb unrecorded.
    await this.work;
  }

  health(): SubsystemHealth {
    const current = this.current(this.ctx.now());
    return {
      status: this.lastError || !current ? 'degraded' : 'ok',
      mode: this.mode,
      currentId: current?.id ?? null,
      expiresAt: current?.expiresAt ? new Date(current.expiresAt).toISOString() : null,
      validCount: this.valid(this.ctx.now()).length,
      lastRotationAt: this.lastRotationAt ? new Date(this.lastRotationAt).toISOString() : null,
      lastError: this.lastError,
    };
  }
}
