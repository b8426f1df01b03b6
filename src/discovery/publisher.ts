import zookeeper from 'node-zookeeper-client';
import type { HostPayload } from './payload.js';
import { ZkCode, zkErrorCode, ZkNotConnectedError, type MiniLogger, type ZkSession } from './zk-session.js';

type Stat = zookeeper.Stat;

export interface PublisherOptions {
  session: ZkSession;
  /** Full path of our ephemeral node. */
  nodePath: string;
  logger: MiniLogger;
  /** Composes the payload at write time. */
  payload(): HostPayload;
}

/**
 * Keeps our ephemeral node in line with what is wanted: present (with fresh data) while
 * turnserver serves, absent otherwise. Every change goes through reconcile(), one at a time, so
 * a create and a remove never race; anything that fails is retried on the next sync (each
 * interval, and every time the session (re)connects).
 */
export class NodePublisher {
  private want = false;
  private dirty = true;
  /** Session and version of the node we wrote last; null when we believe it absent. */
  private published: { sessionId: string; version: number } | null = null;
  private removed = 0;
  /** A create was sent whose answer never came (timeout, lost connection): the node may exist. */
  private createUnanswered = false;
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  lastPublishAt: Date | null = null;
  lastError: string | null = null;

  constructor(private readonly opts: PublisherOptions) {}

  get isPublished(): boolean {
    return (
      this.published !== null &&
      this.published.sessionId === this.opts.session.sessionId &&
      this.opts.session.state === 'connected'
    );
  }
  /** Whether the node should be there (turnserver serving, no drain, no shutdown). */
  get isWanted(): boolean {
    return this.want;
  }
  /**
   * Whether a node of ours may be in ZooKeeper: one we wrote, or one whose create got no answer.
   * False once a removal succeeded or ZooKeeper showed it absent.
   */
  get hasNode(): boolean {
    return this.published !== null || this.createUnanswered;
  }
  /** How many times a node of ours was removed (a shutdown compares it before and after). */
  get removals(): number {
    return this.removed;
  }

  /** Wanted or not (turnserver serving and not shutting down). */
  setWanted(want: boolean, reason: string): Promise<void> {
    if (this.want !== want) this.dirty = true;
    this.want = want;
    return this.sync(reason);
  }

  /** New figures to write at the next reconcile. */
  markDirty(): void {
    this.dirty = true;
  }

  /** Queue one reconcile (coalesced with one that has not started yet). */
  sync(reason = 'sync'): Promise<void> {
    if (this.queued) return this.chain;
    this.queued = true;
    this.chain = this.chain.then(async () => {
      this.queued = false;
      try {
        await this.reconcile(reason);
      } catch (err) {
        this.lastError = (err as Error).message ?? String(err);
        this.opts.logger.debug(
          { event: 'publish-failed', reason, err: this.lastError },
          'publishing the node failed; will retry',
        );
      }
    });
    return this.chain;
  }

  private async reconcile(reason: string): Promise<void> {
    const session = this.opts.session;
    if (session.state !== 'connected') return;
    const sid = session.sessionId as string;
    if (!this.want) return this.removeIfOurs(reason);
    if (this.published?.sessionId === sid) {
      if (!this.dirty) return;
      const data = this.data();
      try {
        const stat = await session.call<Stat>('setData', (c, done) =>
          c.setData(this.opts.nodePath, data, this.published!.version, done),
        );
        this.wrote(sid, stat.version);
        this.opts.logger.debug({ event: 'node-updated', path: this.opts.nodePath }, 'node updated');
        return;
      } catch (err) {
        const code = zkErrorCode(err);
        if (code !== ZkCode.NO_NODE && code !== ZkCode.BAD_VERSION) throw err;
        // Deleted or rewritten by someone else: create it again below.
        this.published = null;
      }
    }
    await this.create(sid, reason);
  }

  private data(): Buffer {
    this.dirty = false;
    return Buffer.from(JSON.stringify(this.opts.payload()));
  }

  private wrote(sessionId: string, version: number): void {
    this.published = { sessionId, version };
    this.lastPublishAt = new Date();
    this.lastError = null;
  }

  private async create(sid: string, reason: string): Promise<void> {
    const session = this.opts.session;
    const nodePath = this.opts.nodePath;
    for (let attempt = 0; attempt < 3; attempt++) {
      const data = this.data();
      try {
        this.createUnanswered = true;
        await session.createNode(nodePath, data, zookeeper.CreateMode.EPHEMERAL);
        this.createUnanswered = false;
        this.wrote(sid, 0);
        const payload = JSON.parse(data.toString()) as HostPayload;
        this.opts.logger.info(
          { event: 'node-created', path: nodePath, reason, sessionId: sid, freeTraffic: payload.freeTraffic },
          'published this host in ZooKeeper',
        );
        return;
      } catch (err) {
        // A timeout or a lost connection leaves the outcome unknown; any other answer is one.
        const code = zkErrorCode(err);
        if (err instanceof ZkNotConnectedError || (code !== null && code !== ZkCode.CONNECTION_LOSS))
          this.createUnanswered = false;
        if (zkErrorCode(err) !== ZkCode.NODE_EXISTS) throw err;
      }
      const stat = await this.stat();
      if (!stat) continue;
      const owner = stat.ephemeralOwner.toString('hex');
      if (owner === sid) {
        this.published = { sessionId: sid, version: stat.version };
        this.dirty = true;
        return this.reconcile(reason);
      }
      // Left by an earlier session (a killed monitor, a session we replaced) or by another host
      // configured with our name: take it over; the warning makes a name clash visible.
      this.opts.logger.warn(
        { event: 'node-taken-over', path: nodePath, previousOwner: owner, ours: session.ownsSession(owner) },
        'replacing a node left by another session',
      );
      await this.remove(stat.version).catch((err) => {
        if (zkErrorCode(err) !== ZkCode.NO_NODE && zkErrorCode(err) !== ZkCode.BAD_VERSION) throw err;
      });
    }
    throw new Error(`could not create ${nodePath}: it keeps coming back`);
  }

  private stat(): Promise<Stat | null> {
    return this.opts.session.call<Stat | null>('exists', (c, done) =>
      c.exists(this.opts.nodePath, (err, stat) => done(err, stat ?? null)),
    );
  }

  private remove(version: number): Promise<void> {
    return this.opts.session.call<void>('remove', (c, done) =>
      c.remove(this.opts.nodePath, version, (err) => done(err)),
    );
  }

  /** Remove the node if one of our sessions owns it (never another host's node of the same name). */
  private async removeIfOurs(reason: string): Promise<void> {
    const stat = await this.stat();
    if (stat) {
      const owner = stat.ephemeralOwner.toString('hex');
      if (!this.opts.session.ownsSession(owner)) {
        this.published = null;
        return;
      }
      try {
        await this.remove(-1);
      } catch (err) {
        if (zkErrorCode(err) !== ZkCode.NO_NODE) throw err;
      }
      this.removed++;
      this.opts.logger.info(
        { event: 'node-removed', path: this.opts.nodePath, reason },
        'withdrew this host from ZooKeeper',
      );
    }
    this.published = null;
    this.createUnanswered = false;
    this.dirty = true;
    this.lastError = null;
  }
}
