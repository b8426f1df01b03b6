import { parseFilter } from '../../stats/query.js';
import type { PageRequest } from '../../stats/usage/query-protocol.js';
import { decodeCursor } from '../../stats/usage/usage-cursor.js';
import type { UsageFormat } from '../../stats/usage/usage-format.js';
import type { UsageView } from '../../stats/usage/usage-sql.js';

export const DEFAULT_LIMIT = 1000;
export const MAX_LIMIT = 10_000;
/** GET /usage without `from` covers this much before now. */
export const DEFAULT_WINDOW_MS = 24 * 3600_000;

const VIEWS: readonly string[] = ['allocation', 'session', 'user', 'unattributed'];
const FORMATS: readonly string[] = ['json', 'csv', 'table'];

/** A query parameter that is wrong: answered 400 naming it. */
export class BadParameter extends Error {
  constructor(
    readonly parameter: string,
    message: string,
  ) {
    super(message);
  }
}

const one = (q: Record<string, unknown>, name: string): string | undefined => {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BadParameter(name, `${name} must be given once`);
  return v;
};

/**
 * GET /usage's parameters → one page request. A cursor carries its query (view and filter): the
 * same parameters may be sent again beside it, other ones are refused.
 */
export function parseUsageQuery(q: Record<string, unknown>, now: number): PageRequest {
  const by = one(q, 'by') ?? 'allocation';
  if (!VIEWS.includes(by)) throw new BadParameter('by', 'by must be allocation, session, user or unattributed');
  const format = one(q, 'format') ?? 'json';
  if (!FORMATS.includes(format)) throw new BadParameter('format', 'format must be json, csv or table');
  const limitText = one(q, 'limit');
  const limit = limitText === undefined ? DEFAULT_LIMIT : Number(limitText);
  if (!/^\d+$/.test(limitText ?? '1') || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_LIMIT)
    throw new BadParameter('limit', `limit must be a whole number from 1 to ${MAX_LIMIT}`);
  let filter;
  try {
    filter = parseFilter({ user: one(q, 'user'), from: one(q, 'from'), to: one(q, 'to') });
  } catch (err) {
    const name = /^(user|from|to)\b/.exec((err as Error).message)?.[1] ?? 'from';
    throw new BadParameter(name, (err as Error).message);
  }
  const cursorText = one(q, 'cursor');
  if (cursorText !== undefined) {
    let cursor;
    try {
      cursor = decodeCursor(cursorText);
    } catch (err) {
      throw new BadParameter('cursor', (err as Error).message);
    }
    const given = { user: filter.user, from: filter.from, to: filter.to };
    const mismatch =
      (q.by !== undefined && by !== cursor.view) ||
      (Object.keys(given) as (keyof typeof given)[]).some(
        (k) => given[k] !== undefined && given[k] !== cursor.filter[k],
      );
    if (mismatch)
      throw new BadParameter(
        'cursor',
        'cursor belongs to another query: send it with the same by, user, from and to, or alone',
      );
    return { view: cursor.view, filter: cursor.filter, after: cursor.key, limit, format: format as UsageFormat, now };
  }
  filter.from ??= Math.min(now, filter.to ?? now) - DEFAULT_WINDOW_MS;
  return { view: by as UsageView, filter, after: null, limit, format: format as UsageFormat, now };
}
