import path from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { ZkCode, zkErrorCode, type ZkSession } from './zk-session.js';

/**
 * The one place the fleet deny list (and whatever comes after it) creates ZooKeeper nodes: its
 * parents and its own nodes. Kept to these two functions so an ACL can be applied to every node
 * we create in one place.
 */
export type NodeMode = 'persistent' | 'ephemeral';

const MODES = { persistent: zookeeper.CreateMode.PERSISTENT, ephemeral: zookeeper.CreateMode.EPHEMERAL };

/** Create `nodePath` and every missing parent as persistent nodes (no error when it exists). */
export function ensurePath(session: ZkSession, nodePath: string): Promise<void> {
  return session.call<void>('mkdirp', (c, done) => c.mkdirp(nodePath, (err) => done(err)));
}

/**
 * Create one node with its missing parents; rejects with NODE_EXISTS (zkErrorCode) when it is
 * there already.
 */
export async function createNode(session: ZkSession, nodePath: string, data: Buffer, mode: NodeMode): Promise<void> {
  try {
    await session.call<string>('create', (c, done) => c.create(nodePath, data, MODES[mode], done));
  } catch (err) {
    if (zkErrorCode(err) !== ZkCode.NO_NODE) throw err;
    await ensurePath(session, path.posix.dirname(nodePath));
    await session.call<string>('create', (c, done) => c.create(nodePath, data, MODES[mode], done));
  }
}
