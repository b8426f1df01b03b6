import type { Keyset, UsageFilter, UsageView } from './usage-sql.js';

/** What a page continues: the query it belongs to and the sort key of the last row served. */
export interface PageCursor {
  view: UsageView;
  filter: UsageFilter;
  key: Keyset;
}

/** Opaque to clients: base64url of the query and the key. */
export function encodeCursor(c: PageCursor): string {
  return Buffer.from(
    JSON.stringify([c.view, c.filter.user ?? null, c.filter.from ?? null, c.filter.to ?? null, c.key]),
  ).toString('base64url');
}

const isKeyPart = (v: unknown) => typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
const optional = <T>(v: unknown, ok: (x: unknown) => boolean): T | undefined => {
  if (v === null) return undefined;
  if (!ok(v)) throw new Error('bad');
  return v as T;
};

/** The cursor a client sent back; throws 'cursor is not valid' for anything this server did not make. */
export function decodeCursor(text: string): PageCursor {
  try {
    if (!/^[A-Za-z0-9_-]{1,4096}$/.test(text)) throw new Error('bad');
    const v = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(v) || v.length !== 5) throw new Error('bad');
    const [view, user, from, to, key] = v as unknown[];
    if (!['allocation', 'session', 'user', 'unattributed'].includes(view as string)) throw new Error('bad');
    if (!Array.isArray(key) || key.length === 0 || key.length > 4 || !key.every(isKeyPart)) throw new Error('bad');
    const isTime = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
    const filter: UsageFilter = {};
    const u = optional<string>(user, (x) => typeof x === 'string' && x.length > 0);
    const f = optional<number>(from, isTime);
    const t = optional<number>(to, isTime);
    if (u !== undefined) filter.user = u;
    if (f !== undefined) filter.from = f;
    if (t !== undefined) filter.to = t;
    return { view: view as UsageView, filter, key: key as Keyset };
  } catch {
    throw new Error('cursor is not valid (use the cursor of the previous page as it was given)');
  }
}
