import type { AppContext } from '../context.js';
import type { Subsystem } from '../lifecycle.js';

/** Usage accounting (issue: stats). Not built yet. */
export function createStats(_ctx: AppContext): Subsystem | null {
  return null;
}
