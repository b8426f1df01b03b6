import { EventEmitter } from 'node:events';
import path from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { Gauge } from 'prom-client';
import type { AppContext } from '../context.js';
import { ZkCode, zkErrorCode, ZkSession } from '../discovery/zk-session.js';
import type { Subsystem, SubsystemHealth } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import type { Credentials } from './credentials.js';
import type { DeniedClient } from './state-store.js';

/** A deny node's data: `{until, reason, revokedAt, by}` (times as ISO strings). */
export function encodeDenied(d: DeniedClient): Buffer {
  return Buffer.from(
    JSON.stringify({
      until: new Date(d.until).toISOString(),
      reason: d.reason,
      revokedAt: new Date(d.revokedAt).toISOString(),
      by: d.by,
    }),
  );
}

/** A deny node read back; null when its data is not one (skipped, never fatal). */
export function decodeDenied(clientId: string, data: Buffer | undefined): DeniedClient | null {
  try {
    const j = JSON.parse(data?.toString('utf8') ?? '') as Record<string, unknown>;
    const until = Date.parse(String(j.until));
    const revokedAt = Date.parse(String(j.revokedAt));
    const reason = j.reason === 'quota' ? 'quota' : j.reason === 'revoked' ? 'revoked' : null;
    if (!Number.isFinite(until) || !Number.isFinite(revokedAt) || reason === null) return null;
    return { clientId, until, revokedAt, reason, by: typeof j.by === 'string' ? j.by : null, unsynced: false };
  } catch {
    return null;
  }
}

export interface FleetDenyEvents {
  /** Entries that newly deny a client on this host (its allocations are to be cut). */
  applied: [DeniedClient[]];
}

/** Safety net besides the watches: a full read this often (also drops expired nodes). */
const RESYNC_MS = 10_000;

/**
 * The fleet deny list (secret mode with `zookeeper.connect`): one persistent node per denied
 * client id under `zookeeper.deniedPath`. Every monitor watches the children (and each child's
 * data) and makes what it reads its local copy in credential.json (Credentials.applyFleet), so
 * a monitor that starts later, or reconnects after an outage, applies every entry at its first
 * read. Entries and lifts made here are marked unsynced in that copy first and written on every
 * sync while connected: a revoke made during a ZooKeeper outage holds locally and reaches the
 * fleet when ZooKeeper is back. Expired nodes are removed by whoever reads them expired (the
 * removal is version-checked, so a node rewritten meanwhile stays).
 */
export class FleetDenyList extends EventEmitter<FleetDenyEvents> implements Subsystem {
  readonly name = 'fleetDenyList';
  private readonly log: Logger;
  private readonly session: ZkSession;
  private readonly root: string;
  private chain: Promise<void> = Promise.resolve();
  private queued = false;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
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
    const pending = () => {
      const u = credentials.unsynced();
      return u.writes.length + u.lifts.length;
    };
    new Gauge({
      name: 'turn_monitor_denied_unsynced',
      help: 'deny entries and lifts made here that ZooKeeper has not got yet',
      registers: [ctx.registry],
      collect() {
        this.set(pending());
      },
    });
  }

  // Every (re)connect reads the whole list again: a new session has none of the old one's watches.
  private readonly onConnected = () => void this.sync('zk-connected');

  async start(): Promise<void> {
    this.session.on('connected', this.onConnected);
    this.session.start();
    this.timer = setInterval(() => void this.sync('interval'), RESYNC_MS);
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
   * Write what is unsynced, then read the whole list and apply it (coalesced with a sync not yet
   * started). Resolves once done, or at once when not connected (it runs on the next connect).
   */
  sync(reason = 'sync'): Promise<void> {
    if (this.queued) return this.chain;
    this.queued = true;
    this.chain = this.chain.then(async () => {
      this.queued = false;
      if (this.stopped || this.session.state !== 'connected') return;
      try {
        await this.flush();
        await this.read();
        this.lastSyncAt = Date.now();
        this.lastError = null;
      } catch (err) {
        this.lastError = (err as Error).message;
        this.log.debug({ event: 'fleet-deny-sync-failed', reason, err: this.lastError }, 'deny list sync failed');
      }
    });
    return this.chain;
  }

  private nodePath(clientId: string): string {
    return path.posix.join(this.root, clientId);
  }

  /** Entries and lifts made here go to ZooKeeper (an entry overwrites the node, a lift removes it). */
  private async flush(): Promise<void> {
    const { writes, lifts } = this.credentials.unsynced();
    for (const clientId of lifts) {
      await this.remove(this.nodePath(clientId), -1);
      await this.credentials.markSynced({ lift: clientId });
      this.log.info({ event: 'fleet-deny-lifted', clientId }, 'lift written to the fleet deny list');
    }
    for (const d of writes) {
      const p = this.nodePath(d.clientId);
      try {
        await this.session.createNode(p, encodeDenied(d), zookeeper.CreateMode.PERSISTENT);
      } catch (err) {
        if (zkErrorCode(err) !== ZkCode.NODE_EXISTS) throw err;
        await this.session.call('setData', (c, done) => c.setData(p, encodeDenied(d), -1, done));
      }
      await this.credentials.markSynced({ write: d });
      this.log.info(
        { event: 'fleet-deny-written', clientId: d.clientId, reason: d.reason },
        'written to the fleet deny list',
      );
    }
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
   * A watch fired (a child added or removed, a node's data changed): read again, which sets the
   * watches anew (a watch fires once; the library and the server keep one per path and kind).
   */
  private readonly onWatch = (e: zookeeper.Event) => {
    this.log.debug({ event: 'fleet-deny-watch', path: e.getPath(), type: e.getName() }, 'deny list changed');
    void this.sync('watch');
  };

  private async children(): Promise<string[]> {
    const list = () =>
      this.session.call<string[]>('getChildren', (c, done) => c.getChildren(this.root, this.onWatch, done));
    try {
      return await list();
    } catch (err) {
      if (zkErrorCode(err) !== ZkCode.NO_NODE) throw err;
      await this.session.ensurePath(this.root);
      return list();
    }
  }

  /** Read every entry (setting the watches), drop expired nodes, and apply the list here. */
  private async read(): Promise<void> {
    const now = this.ctx.now();
    const remote: DeniedClient[] = [];
    // All nodes at once: the client pipelines the requests on its one connection.
    const nodes = await Promise.all(
      (await this.children()).map(async (clientId) => {
        const p = this.nodePath(clientId);
        try {
          const got = await this.session.call<{ data: Buffer | undefined; version: number }>('getData', (c, done) =>
            c.getData(p, this.onWatch, (err, data, stat) => done(err, { data, version: stat?.version ?? -1 })),
          );
          return { clientId, p, ...got };
        } catch (err) {
          if (zkErrorCode(err) === ZkCode.NO_NODE) return null; // removed meanwhile: the watch says so
          throw err;
        }
      }),
    );
    for (const n of nodes) {
      if (!n) continue;
      const d = decodeDenied(n.clientId, n.data);
      if (!d) {
        this.log.debug({ event: 'fleet-deny-bad-node', path: n.p }, 'skipping a deny node that is not one');
        continue;
      }
      if (d.until <= now) {
        await this.remove(n.p, n.version);
        this.log.info(
          { event: 'fleet-deny-expired', clientId: n.clientId },
          'expired entry removed from the fleet deny list',
        );
        continue;
      }
      remote.push(d);
    }
    this.entries = remote.length;
    const { added, lifted } = await this.credentials.applyFleet(remote);
    if (added.length > 0 || lifted.length > 0)
      this.log.info(
        { event: 'fleet-deny-applied', added: added.map((d) => d.clientId), lifted },
        'fleet deny list applied on this host',
      );
    if (added.length > 0) this.emit('applied', added);
  }

  health(): SubsystemHealth {
    const zk = this.session.state;
    const u = this.credentials.unsynced();
    const problem =
      zk !== 'connected'
        ? `${this.session.lastError ?? `ZooKeeper ${zk}`}: the local copy holds, new denials queue`
        : this.lastError;
    return {
      status: problem ? 'degraded' : 'ok',
      zookeeper: zk,
      path: this.root,
      entries: this.entries,
      unsynced: u.writes.length + u.lifts.length,
      lastSyncAt: this.lastSyncAt ? new Date(this.lastSyncAt).toISOString() : null,
      error: problem,
    };
  }
}
