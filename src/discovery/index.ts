import type { AppContext } from '../context.js';
import type { Subsystem } from '../lifecycle.js';
import { Discovery, type DiscoveryDeps } from './discovery.js';

/**
 * Load discovery in ZooKeeper. With `zookeeper.connect: null` it is off: a stub that says so in
 * /health (logged once at start).
 */
export function createDiscovery(ctx: AppContext, deps: DiscoveryDeps): Subsystem {
  if (ctx.config.zookeeper.connect === null) {
    const log = ctx.logger.child({ component: 'discovery' });
    return {
      name: 'discovery',
      start: async () => log.info({ event: 'discovery-disabled' }, 'discovery disabled (zookeeper.connect is null)'),
      stop: async () => undefined,
      health: () => ({ status: 'disabled' }),
    };
  }
  return new Discovery(ctx, deps);
}
