import type { AppContext } from '../context.js';
import type { Subsystem } from '../lifecycle.js';
import { statsRoutes } from './routes.js';
import { Stats } from './stats.js';

/** Usage accounting from coturn's events into SQLite, served at /usage and /allocations. */
export function createStats(ctx: AppContext): Subsystem {
  const stats = new Stats(ctx);
  ctx.supervisor.addContributor(stats);
  ctx.http.addRoutes(statsRoutes(stats.pipeline));
  return stats;
}
