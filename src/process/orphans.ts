import type { ManagedChildOptions } from './child-types.js';
import { killPid } from './pids.js';

/**
 * Copies of the child left running by an earlier monitor, before the first spawn: with `adopt`, a
 * single one that answers its probe is returned to be adopted; every other one is stopped.
 */
export async function settleOrphans(opts: ManagedChildOptions): Promise<number | null> {
  const log = opts.logger;
  const orphans = opts.findOrphans();
  if (opts.adopt && orphans.length === 1) {
    if (await opts.probe()) return orphans[0];
    log.warn(
      { event: 'orphan', orphanPid: orphans[0], why: 'no-answer' },
      `stopping ${opts.name} left running by an earlier monitor: it does not answer`,
    );
    await killPid(orphans[0], opts.stopTimeoutMs);
  } else {
    for (const pid of orphans) {
      const why = opts.adopt ? 'several' : 'not-adoptable';
      log.warn({ event: 'orphan', orphanPid: pid, why }, `stopping ${opts.name} left running by an earlier monitor`);
      await killPid(pid, opts.stopTimeoutMs);
    }
  }
  return null;
}
