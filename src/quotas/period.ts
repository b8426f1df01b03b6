import { readFileSync } from 'node:fs';

export type QuotaPeriod = 'month' | 'day';
export type QuotaState = 'ok' | 'warned' | 'exceeded';

/** The UTC period holding `now`: [start, end) in epoch ms. */
export function periodBounds(now: number, period: QuotaPeriod): { start: number; end: number } {
  const d = new Date(now);
  if (period === 'day') {
    const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
    return { start, end: start + 86_400_000 };
  }
  return {
    start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1),
    end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1),
  };
}

/** Where a client stands: at the quota exceeded, at warnAt × quota warned. */
export function stateOf(used: number, quota: number | null, warnAt: number): QuotaState {
  if (quota === null) return 'ok';
  if (used >= quota) return 'exceeded';
  return used >= warnAt * quota ? 'warned' : 'ok';
}

/**
 * TEST-ONLY HOOK. The clock quotas read their period from: the monitor's own, plus the offset in
 * ms written in the file that TURN_MONITOR_QUOTA_CLOCK_FILE names (read at every call, so a test
 * moves a running fleet into the next period by writing it). Not a config key: no operator ever
 * wants a period other than the calendar's. Unset (production): the monitor's clock as it is.
 */
export function quotaClock(now: () => number, env: NodeJS.ProcessEnv = process.env): () => number {
  const file = env.TURN_MONITOR_QUOTA_CLOCK_FILE;
  if (!file) return now;
  return () => {
    let offset = 0;
    try {
      offset = Number(readFileSync(file, 'utf8').trim()) || 0;
    } catch {
      /* no file yet: no offset */
    }
    return now() + offset;
  };
}
