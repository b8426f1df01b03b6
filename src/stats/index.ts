import type { AppContext } from '../context.js';
import { Stats } from './stats.js';

/** Usage accounting from coturn's events into SQLite; its lines go into turnserver.conf. */
export function createStats(ctx: AppContext): Stats {
  const stats = new Stats(ctx);
  ctx.supervisor.addContributor(stats);
  return stats;
}
