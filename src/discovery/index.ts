import type { AppContext } from '../context.js';
import type { Subsystem } from '../lifecycle.js';
import { Discovery, type DiscoveryDeps } from './discovery.js';

/**
 * Load discovery in ZooKeeper. With `zookeeper.connect: null` it is off: a stub that says so in
 * /health (logged once at start).
 */
/** Discovery as the app sees it: a drain holds the node withdrawn. */
export type DiscoveryHandle = Subsystem & { hold(held: boolean): Promise<void> };

export function createDiscovery(ctx: AppContext, deps: DiscoveryDeps): DiscoveryHandle {
  if (ctx.config.zookeeper.connect === null) {
    const log = ctx.logger.child({ component: 'discovery' });
    return {
      name: 'discovery',
      start: async () => log.info({ event: 'discovery-disabled' }, 'discovery disabled (zookeeper.connect is null)'),
      stop: async () => undefined,
      health: () => ({ status: 'disabled' }),
      hold: async () => undefined,
    };
  }
  return new Discovery(ctx, deps);
}
