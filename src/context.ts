import type { Registry } from 'prom-client';
import type { Config } from './config/schema.js';
import type { Logger } from './log/logger.js';
import type { TurnserverSupervisor } from './supervisor/turnserver-supervisor.js';

/** Live usage figures the stats subsystem offers to others (discovery publishes the count). */
export interface UsageView {
  openAllocationCount(): number;
  /** Ids of the open allocations (a drain cancels what is left). */
  openAllocationIds(): string[];
}

/** What the composition root hands every subsystem factory; anything else is wired explicitly. */
export interface AppContext {
  readonly config: Config;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly supervisor: TurnserverSupervisor;
  /** Injectable clock (ms since epoch) for rotation and expiry decisions. */
  readonly now: () => number;
}
