import type { AppContext } from '../context.js';
import { Webhooks } from './webhooks.js';

export type { Webhooks };

/** Webhooks to the application (`webhooks.endpoints`; off when none). */
export function createWebhooks(ctx: AppContext, opts: { hostId: string }): Webhooks {
  return new Webhooks({
    config: ctx.config,
    logger: ctx.logger,
    registry: ctx.registry,
    hostId: opts.hostId,
    now: ctx.now,
  });
}
