import type { AppContext } from '../context.js';
import { Export } from './export.js';

/** The fleet export of usage records into PostgreSQL (`export.postgres.url`; off when null). */
export function createExport(ctx: AppContext, opts: { hostId: string }): Export {
  return new Export({
    config: ctx.config,
    logger: ctx.logger,
    registry: ctx.registry,
    hostId: opts.hostId,
    now: ctx.now,
  });
}
