import path from 'node:path';
import type zookeeper from 'node-zookeeper-client';
import type { Counter } from 'prom-client';
import { ZkCode, zkErrorCode, type ZkSession } from '../discovery/zk-session.js';
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

/** One deny node as last read: its entry (null when its data is not one) and its version. */
export interface CachedNode {
  entry: DeniedClient | null;
  version: number;
}

/** Names listed now that the cache lacks (to read), and cached names no longer listed (to drop). Pure. */
export function diffChildren(
  cached: ReadonlyMap<string, unknown>,
  listed: readonly string[],
): {
  added: string[];
  gone: string[];
} {
  const now = new Set(listed);
  return {
    added: listed.filter((n) => !cached.has(n)),
    gone: [...cached.keys()].filter((n) => !now.has(n)),
  };
}

/**
 * The monitor's copy of the deny nodes under the root, kept by reading only what changed: a
 * full read lists the children and reads every node (a new session, which has no watches); a
 * children change reads only the names not cached and drops the ones gone; a data change reads
 * that one node. Every read sets the watch again (children on the root, data on each node; a
 * watch fires once, and the library keeps one per path, kind and function).
 */
export class DenyNodes {
  readonly cache = new Map<string, CachedNode>();
  /** getData calls made (also counted in the metric). */
  readCount = 0;

  constructor(
    private readonly session: ZkSession,
    readonly root: string,
    private readonly watcher: (e: zookeeper.Event) => void,
    private readonly reads: Counter,
    private readonly onBadNode: (p: string) => void,
  ) {}

  nodePath(clientId: string): string {
    return path.posix.join(this.root, clientId);
  }

  /** Every node again (a new session): the cache becomes exactly what is there. */
  async readAll(): Promise<void> {
    const names = await this.children();
    const fresh = new Map<string, CachedNode>();
    // All nodes at once: the client pipelines the requests on its one connection.
    await Promise.all(
      names.map(async (n) => {
        const got = await this.read(n);
        if (got) fresh.set(n, got);
      }),
    );
    this.cache.clear();
    for (const [n, c] of fresh) this.cache.set(n, c);
  }

  /** The children changed: read the new names only, drop the names gone. */
  async readChildren(): Promise<void> {
    const { added, gone } = diffChildren(this.cache, await this.children());
    for (const n of gone) this.cache.delete(n);
    await this.readNodes(added);
  }

  /** These nodes changed (or were just written here): read them again; one gone is dropped. */
  async readNodes(names: Iterable<string>): Promise<void> {
    await Promise.all(
      [...names].map(async (n) => {
        const got = await this.read(n);
        if (got) this.cache.set(n, got);
        else this.cache.delete(n);
      }),
    );
  }

  drop(clientId: string): void {
    this.cache.delete(clientId);
  }

  /** Entries still in force at `now` (nodes whose data is not one are left out). */
  live(now: number): DeniedClient[] {
    const out: DeniedClient[] = [];
    for (const c of this.cache.values()) if (c.entry && c.entry.until > now) out.push(c.entry);
    return out;
  }

  /** Cached nodes whose entry has ended at `now`, with the version they were read at. */
  expired(now: number): { clientId: string; version: number }[] {
    const out: { clientId: string; version: number }[] = [];
    for (const [clientId, c] of this.cache)
      if (c.entry && c.entry.until <= now) out.push({ clientId, version: c.version });
    return out;
  }

  private async children(): Promise<string[]> {
    const list = () =>
      this.session.call<string[]>('getChildren', (c, done) => c.getChildren(this.root, this.watcher, done));
    try {
      return await list();
    } catch (err) {
      if (zkErrorCode(err) !== ZkCode.NO_NODE) throw err;
      await this.session.ensurePath(this.root);
      return list();
    }
  }

  /** One node's data with its watch; null when it is gone (the children watch says so). */
  private async read(clientId: string): Promise<CachedNode | null> {
    const p = this.nodePath(clientId);
    this.reads.inc();
    this.readCount++;
    try {
      const got = await this.session.call<{ data: Buffer | undefined; version: number }>('getData', (c, done) =>
        c.getData(p, this.watcher, (err, data, stat) => done(err, { data, version: stat?.version ?? -1 })),
      );
      const entry = decodeDenied(clientId, got.data);
      if (!entry) this.onBadNode(p);
      return { entry, version: got.version };
    } catch (err) {
      if (zkErrorCode(err) === ZkCode.NO_NODE) return null;
      throw err;
    }
  }
}
