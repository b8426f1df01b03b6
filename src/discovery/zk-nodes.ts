import zookeeper from 'node-zookeeper-client';
import type { ZkSession } from './zk-session.js';

/**
 * How the fleet deny list creates its ZooKeeper nodes: through the session's createNode and
 * ensurePath, which give every node (and every parent they make) the session's ACL (nodeAcl:
 * "digest user: all, world: read" with zookeeper.auth set).
 */
export type NodeMode = 'persistent' | 'ephemeral';

const MODES = { persistent: zookeeper.CreateMode.PERSISTENT, ephemeral: zookeeper.CreateMode.EPHEMERAL };

/** Create `nodePath` and every missing parent as persistent nodes (no error when it exists). */
export function ensurePath(session: ZkSession, nodePath: string): Promise<void> {
  return session.ensurePath(nodePath);
}

/** Create one node with its missing parents; rejects with NODE_EXISTS (zkErrorCode) when it is there already. */
export async function createNode(session: ZkSession, nodePath: string, data: Buffer, mode: NodeMode): Promise<void> {
  await session.createNode(nodePath, data, MODES[mode]);
}
