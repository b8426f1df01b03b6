import type { AppContext } from '../context.js';
import type { Subsystem } from '../lifecycle.js';

/** Load discovery in ZooKeeper (issue: discovery). Not built yet. */
export function createDiscovery(_ctx: AppContext): Subsystem | null {
  return null;
}
