import { EventEmitter } from 'node:events';
import zookeeper from 'node-zookeeper-client';
import { Counter, Gauge } from 'prom-client';
import type { AppContext } from '../context.js';
import { ZkCode, zkErrorCode, ZkSession } from '../discovery/zk-session.js';
import type { Subsystem, SubsystemHealth } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import type { Credentials } from './credentials.js';
import { DenyNodes, encodeDenied } from './fleet-deny-nodes.js';
import type { DeniedClient } from './state-store.js';

export { decodeDenied, encodeDenied } from './fleet-deny-nodes.js';

export interface FleetDenyEvents {
  /** Entries that newly deny a client on this host (its allocations are to be cut). */
  applied: [DeniedClient[]];
}

/** Pass without ZooKeeper reads: write what is unsynced, remove nodes the cache has seen expire. */
const PASS_MS = 10_000;
/**
 * A full re-read this often besides the watches and the read at every (re)connect. The watches
 * and those reads are enough in principle; this bounds how long a copy could stay wrong if a
 * watch were ever lost unseen (a library or server bug), at one read per node per 10 minutes.
 */
const FULL_READ_MS = 10 * 60_000;

/** What the watches said changed since the last read (collected between reads: a burst is one read). */
interface Pending {
  full: boolean;
  children: boolean;
  nodes: Set<string>;
  deleted: Set<string>;
}
const nothingPending = (): Pending => ({ full: false, children: false, nodes: new Set(), deleted: new Set() });

/**
 * The fleet deny list (secret mode with `zookeeper.connect`): one persistent node per denied
 * client id under `zookeeper.deniedPath`. Every monitor watches the children (and each child's
 * data), keeps what it read in a cache (DenyNodes) and makes that its local copy in
 * credential.json (Credentials.applyFleet), so a monitor that starts later, or reconnects after
 * an outage, applies every entry at its first read. A change costs what changed: a new child is
 * one read, a node's new data one read, a removal none; only a new session reads every node.
 * Entries and lifts made here are marked unsynced in that copy first and written on every pass
 * while connected: a revoke made during a ZooKeeper outage holds locally and reaches the fleet
 * when ZooKeeper is back. Expired nodes are removed by whoever sees them expired in its cache
 * (the removal is version-checked, so a node rewritten meanwhile stays).
 */
export class FleetDenyList extends EventEmitter<FleetDenyEvents> implements Subsystem {
  readonly name = 'fleetDenyList';
  private readonly log: Logger;
  private readonly session: ZkSession;
  private readonly root: string;
  private readonly nodes: DenyNodes;
  private pending: Pending = nothingPending();
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private lastFullAt = 0;
  private lastSyncAt: number | null = null;
  private lastError: string | null = null;
  private entries = 0;

  constructor(
    private readonly ctx: AppContext,
    private readonly credentials: Credentials,
  ) {
    super();
    const { config } = ctx;
    this.log = ctx.logger.child({ component: 'fleet-deny' });
    this.root = config.zookeeper.deniedPath;
    this.session = new ZkSession({
      connect: config.zookeeper.connect as string,
      sessionTimeoutMs: config.zookeeper.sessionTimeoutMs,
      logger: this.log,
      // Its nodes get the same ACL as the host node (README, Security): only the monitors may change them.
      auth: config.zookeeper.auth,
    });
    const reads = new Counter({
      name: 'turn_monitor_denied_reads_total',
      help: 'deny nodes read from ZooKeeper (getData): every node at a new session, else only what changed',
      registers: [ctx.registry],
    });
    this.nodes = new DenyNodes(this.session, this.root, this.onWatch, reads, (p) =>
      this.log.debug({ event: 'fleet-deny-bad-node', path: p }, 'skipping a deny node that is not one'),
    );
    const unsyncedCount = () => this.unsyncedCount();
    new Gauge({
      name: 'turn_monitor_denied_unsynced',
      help: 'deny entries and lifts made here that ZooKeeper has not got yet',
      registers: [ctx.registry],
      collect() {
        this.set(unsyncedCount());
      },
    });
  }

  // Every (re)connect reads the whole list again: a new session has none of the old one's watches.
  private readonly onConnected = () => {
    this.pending.full = true;
    void this.sync('zk-connected');
  };

  private readonly onTick = () => {
    if (Date.now() - this.lastFullAt >= FULL_READ_MS) this.pending.full = true;
    void this.sync('interval');
  };

  async start(): Promise<void> {
    this.session.on('connected', this.onConnected);
    this.session.start();
    this.timer = setInterval(this.onTick, PASS_MS);
    this.timer.unref();
    this.log.info(
      { event: 'fleet-deny-started', path: this.root, connect: this.ctx.config.zookeeper.connect },
      'fleet deny list on',
    );
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.session.off('connected', this.onConnected);
    await this.chain;
    await this.session.close();
  }

  /**
   * Write what is unsynced, read what the watches said changed, remove what expired, and apply
   * the list here (coalesced with a pass not yet started: a burst of watch events is one pass).
   * Resolves once done, or at once when not connected (a full read runs on the next connect).
   */
  sync(reason = 'sync'): Promise<void> {
    if (this.queued) return this.chain;
    this.queued = true;
    this.chain = this.chain.then(async () => {
      this.queued = false;
      if (this.stopped || this.session.state !== 'connected') return;
      let work = nothingPending();
      try {
        const changed = await this.flush();
        work = this.pending;
        this.pending = nothingPending();
        const reads = await this.read(work);
        const expired = await this.removeExpired();
        if (changed || reads.changed || expired) await this.apply();
        if (reads.count > 0)
          this.log.debug(
            { event: 'fleet-deny-read', reason, full: work.full, reads: reads.count, entries: this.entries },
            'deny list read',
          );
        this.lastSyncAt = Date.now();
        this.lastError = null;
      } catch (err) {
        // What was not read is read on the next pass (or by the full read after a reconnect).
        this.pending.full ||= work.full;
        this.pending.children ||= work.children;
        for (const n of work.nodes) this.pending.nodes.add(n);
        for (const n of work.deleted) this.pending.deleted.add(n);
        this.lastError = (err as Error).message;
        this.log.debug({ event: 'fleet-deny-sync-failed', reason, err: this.lastError }, 'deny list sync failed');
      }
    });
    return this.chain;
  }

  /**
   * Entries and lifts made here go to ZooKeeper (an entry overwrites the node, a lift removes
   * it). A written node is read back in this pass (its version, and a data watch on it); a
   * lifted one leaves the cache. True when something was written.
   */
  private async flush(): Promise<boolean> {
    const { writes, lifts } = this.credentials.unsynced();
    for (const clientId of lifts) {
      await this.remove(this.nodes.nodePath(clientId), -1);
      this.nodes.drop(clientId);
      await this.credentials.markSynced({ lift: clientId });
      this.log.info({ event: 'fleet-deny-lifted', clientId }, 'lift written to the fleet deny list');
    }
    for (const d of writes) {
      const p = this.nodes.nodePath(d.clientId);
      try {
        await this.session.createNode(p, encodeDenied(d), zookeeper.CreateMode.PERSISTENT);
      } catch (err) {
        if (zkErrorCode(err) !== ZkCode.NODE_EXISTS) throw err;
        await this.session.call('setData', (c, done) => c.setData(p, encodeDenied(d), -1, done));
      }
      this.pending.nodes.add(d.clientId);
      await this.credentials.markSynced({ write: d });
      this.log.info(
        { event: 'fleet-deny-written', clientId: d.clientId, reason: d.reason },
        'written to the fleet deny list',
      );
    }
    return writes.length + lifts.length > 0;
  }

  private remove(p: string, version: number): Promise<void> {
    return this.session
      .call<void>('remove', (c, done) => c.remove(p, version, (err) => done(err)))
      .catch((err) => {
        const code = zkErrorCode(err);
        if (code !== ZkCode.NO_NODE && code !== ZkCode.BAD_VERSION) throw err;
      });
  }

  /**
   * A watch fired: note what changed and run a pass, which reads only that and sets its watch
   * again. The root's children changed: list them; a node's data changed: read it; a node was
   * deleted: drop it (the children watch fires too; dropping twice is harmless).
   */
  private readonly onWatch = (e: zookeeper.Event) => {
    const p = e.getPath();
    const type = e.getType();
    this.log.debug({ event: 'fleet-deny-watch', path: p, type: e.getName() }, 'deny list changed');
    if (p === this.root) {
      if (type === zookeeper.Event.NODE_CHILDREN_CHANGED) this.pending.children = true;
      else this.pending.full = true; // the root itself went: read it all again (it is made anew)
    } else if (type === zookeeper.Event.NODE_DELETED) {
      this.pending.deleted.add(p.slice(p.lastIndexOf('/') + 1));
    } else {
      this.pending.nodes.add(p.slice(p.lastIndexOf('/') + 1));
    }
    void this.sync('watch');
  };

  /** Read what `work` says changed; how many nodes were read and whether the cache may have changed. */
  private async read(work: Pending): Promise<{ changed: boolean; count: number }> {
    const before = this.nodes.readCount;
    if (work.full) {
      await this.nodes.readAll();
      this.lastFullAt = Date.now();
      return { changed: true, count: this.nodes.readCount - before };
    }
    for (const n of work.deleted) this.nodes.drop(n);
    if (work.children) await this.nodes.readChildren();
    await this.nodes.readNodes(work.nodes);
    const count = this.nodes.readCount - before;
    return { changed: work.deleted.size > 0 || work.children || count > 0, count };
  }

  /** Nodes the cache holds expired are removed (version-checked) and dropped; true when any. */
  private async removeExpired(): Promise<boolean> {
    const expired = this.nodes.expired(this.ctx.now());
    for (const { clientId, version } of expired) {
      await this.remove(this.nodes.nodePath(clientId), version);
      this.nodes.drop(clientId);
      this.log.info({ event: 'fleet-deny-expired', clientId }, 'expired entry removed from the fleet deny list');
    }
    return expired.length > 0;
  }

  /** The cache's list becomes the local copy (in memory; credential.json is written only on a change). */
  private async apply(): Promise<void> {
    const remote = this.nodes.live(this.ctx.now());
    this.entries = remote.length;
    const { added, lifted } = await this.credentials.applyFleet(remote);
    if (added.length > 0 || lifted.length > 0)
      this.log.info(
        { event: 'fleet-deny-applied', added: added.map((d) => d.clientId), lifted },
        'fleet deny list applied on this host',
      );
    if (added.length > 0) this.emit('applied', added);
  }

  /** Entries and lifts made here that ZooKeeper has not got yet. */
  private unsyncedCount(): number {
    const u = this.credentials.unsynced();
    return u.writes.length + u.lifts.length;
  }

  health(): SubsystemHealth {
    const zk = this.session.state;
    const problem =
      zk !== 'connected'
        ? `${this.session.lastError ?? `ZooKeeper ${zk}`}: the local copy holds, new denials queue`
        : this.lastError;
    return {
      status: problem ? 'degraded' : 'ok',
      zookeeper: zk,
      path: this.root,
      entries: this.entries,
      unsynced: this.unsyncedCount(),
      lastSyncAt: this.lastSyncAt ? new Date(this.lastSyncAt).toISOString() : null,
      error: problem,
    };
  }
}
