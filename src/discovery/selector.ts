// Library module for signalling servers: `import { createSelector } from 'turn-monitor/selector'`.
import { EventEmitter } from 'node:events';
import zookeeper from 'node-zookeeper-client';
import { parseHostPayload } from './payload.js';
import { pickHost, sortByFree, type TurnHost } from './round-robin.js';
import { silentLogger, ZkCode, zkErrorCode, ZkSession, type MiniLogger } from './zk-session.js';

export type { TurnHost };
export type { HostPayload } from './payload.js';
export { hostUrl } from './payload.js';

export interface SelectorOptions {
  /** ZooKeeper connect string, e.g. "10.0.0.5:2181,10.0.0.6:2181". */
  connect: string;
  /** Parent of the host nodes (turn-monitor's `zookeeper.path`). Default /turn/servers. */
  path?: string;
  /** Default 10000. */
  sessionTimeoutMs?: number;
  /** A pino-style logger; silent by default. */
  logger?: MiniLogger;
}

export interface TurnSelectorEvents {
  /** Every host, sorted by freeTraffic (most free first). */
  change: [TurnHost[]];
  connected: [];
  disconnected: [];
  /** The first complete listing. */
  loaded: [];
}

/**
 * Watches `<path>`'s children and their data and keeps an up-to-date list of TURN hosts. A host
 * whose node is deleted drops out as soon as the watch fires. While ZooKeeper is unreachable the
 * last known list is kept (and `connected` is false).
 */
export class TurnSelector extends EventEmitter<TurnSelectorEvents> {
  private readonly session: ZkSession;
  private readonly root: string;
  private readonly hosts = new Map<string, TurnHost>();
  private readonly dataWatchers = new Map<string, (event: zookeeper.Event) => void>();
  private lastPicked: string | null = null;
  private loaded = false;
  private refreshing: Promise<void> | null = null;
  private refreshAgain = false;
  private reloadAll = false;
  private closed = false;
  private readonly log: MiniLogger;

  constructor(opts: SelectorOptions) {
    super();
    this.root = opts.path ?? '/turn/servers';
    if (!/^\/[^\0]*[^/]$/.test(this.root))
      throw new Error(`selector path must be an absolute znode path without trailing slash: ${this.root}`);
    this.log = opts.logger ?? silentLogger;
    this.session = new ZkSession({
      connect: opts.connect,
      sessionTimeoutMs: opts.sessionTimeoutMs ?? 10_000,
      logger: this.log,
    });
    this.session.on('connected', ({ sameSession }: { sameSession: boolean }) => {
      // A new session has none of the old watches: read every host again.
      if (!sameSession) this.reloadAll = true;
      this.emit('connected');
      void this.refresh();
    });
    this.session.on('disconnected', () => this.emit('disconnected'));
    this.session.start();
  }

  get connected(): boolean {
    return this.session.state === 'connected';
  }

  /** Resolves once the first complete listing is in; rejects after `timeoutMs`. */
  ready(timeoutMs = 10_000): Promise<void> {
    if (this.loaded) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('loaded', onLoaded);
        reject(
          new Error(
            `no listing of ${this.root} from ZooKeeper within ${timeoutMs} ms (${this.session.lastError ?? this.session.state})`,
          ),
        );
      }, timeoutMs);
      const onLoaded = () => {
        clearTimeout(timer);
        resolve();
      };
      this.once('loaded', onLoaded);
    });
  }

  /** Every known host, most free first. */
  list(): TurnHost[] {
    return sortByFree([...this.hosts.values()]);
  }

  /**
   * A host for the next client: round-robin among serving hosts with at least `minFreeMbps` free;
   * the most free serving host when none has that much; null when none serves.
   */
  pick(minFreeMbps = 0): TurnHost | null {
    const picked = pickHost([...this.hosts.values()], minFreeMbps, this.lastPicked);
    if (!picked) return null;
    if (picked.roundRobin) this.lastPicked = picked.host.name;
    return picked.host;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.session.close();
  }

  private readonly childWatcher = () => void this.refresh();

  /** Re-list the children (one at a time; a request during a run causes one more run). */
  private refresh(): Promise<void> {
    if (this.refreshing) {
      this.refreshAgain = true;
      return this.refreshing;
    }
    this.refreshing = (async () => {
      do {
        this.refreshAgain = false;
        try {
          await this.listOnce();
        } catch (err) {
          this.log.debug(
            { event: 'selector-refresh-failed', err: (err as Error).message },
            'listing hosts failed; retrying on reconnect',
          );
        }
      } while (this.refreshAgain && !this.closed);
      this.refreshing = null;
    })();
    return this.refreshing;
  }

  private async listOnce(): Promise<void> {
    if (this.closed) return;
    let names: string[];
    try {
      names = await this.session.call<string[]>('getChildren', (c, done) =>
        c.getChildren(this.root, this.childWatcher, (err, children) => done(err, children)),
      );
    } catch (err) {
      if (zkErrorCode(err) !== ZkCode.NO_NODE) throw err;
      // No host has published yet: wait for the parent to appear.
      await this.session.call('exists', (c, done) => c.exists(this.root, this.childWatcher, done));
      names = [];
    }
    const wanted = new Set(names);
    let changed = false;
    for (const name of [...this.hosts.keys()]) {
      if (!wanted.has(name)) changed = this.drop(name) || changed;
    }
    const all = this.reloadAll;
    this.reloadAll = false;
    await Promise.all(names.filter((n) => all || !this.hosts.has(n)).map((n) => this.loadHost(n)));
    if (changed) this.changed();
    if (!this.loaded) {
      this.loaded = true;
      this.emit('loaded');
    }
  }

  private watcherFor(name: string): (event: zookeeper.Event) => void {
    let w = this.dataWatchers.get(name);
    if (!w) {
      w = (event) => {
        if (event.getType() === zookeeper.Event.NODE_DELETED) {
          if (this.drop(name)) this.changed();
        } else {
          void this.loadHost(name).catch(() => undefined);
        }
      };
      this.dataWatchers.set(name, w);
    }
    return w;
  }

  private async loadHost(name: string): Promise<void> {
    if (this.closed) return;
    try {
      const data = await this.session.call<Buffer>('getData', (c, done) =>
        c.getData(`${this.root}/${name}`, this.watcherFor(name), (err, d) => done(err, d)),
      );
      const payload = parseHostPayload(data);
      if (!payload) {
        this.log.warn({ event: 'selector-bad-node', node: name }, 'ignoring a host node without valid JSON data');
        if (this.drop(name)) this.changed();
        return;
      }
      this.hosts.set(name, { name, ...payload });
      this.changed();
    } catch (err) {
      if (zkErrorCode(err) !== ZkCode.NO_NODE) throw err;
      if (this.drop(name)) this.changed();
    }
  }

  private drop(name: string): boolean {
    this.dataWatchers.delete(name);
    return this.hosts.delete(name);
  }

  private changed(): void {
    if (this.loaded) this.emit('change', this.list());
  }
}

/** Connect and start watching; call `await selector.ready()` before the first pick. */
export function createSelector(opts: SelectorOptions): TurnSelector {
  return new TurnSelector(opts);
}
