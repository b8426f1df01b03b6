import { COUNTER_COLUMNS, SCHEMA, SHIP_SQL } from '../src/export/pg-schema.js';

/**
 * The alternative the `rollup_choice` benchmark measures SHIP_SQL against: the same raw-row
 * upsert, with the rollups maintained by a row-level trigger instead of the statement's own CTEs.
 * The arithmetic is SHIP_SQL's, row by row: NEW's contribution (an allocation's 1, its eight
 * counters, its client and peer bytes, 1 if incomplete) less OLD's when the billing key (realm,
 * client) is the same, into the hour (and month) of NEW.last_event_at; when the key changed,
 * OLD's whole contribution off OLD's hour and key. A delta that is all zeros is skipped; the host
 * joins `host_ids` with its first non-zero delta of NEW's (as the statement's `pos`).
 */

/** SHIP_SQL up to and including `ins` (the raw rows upserted), then its own closing SELECT: no rollup CTEs. */
export const RAW_SHIP_SQL = (() => {
  const cut = SHIP_SQL.indexOf('\n), d AS (');
  const close = SHIP_SQL.lastIndexOf('\nSELECT (SELECT count(*) FROM upd)');
  if (cut < 0 || close < cut || !SHIP_SQL.slice(cut).includes('client_usage_hourly'))
    throw new Error('rollup_choice: SHIP_SQL no longer has the shape this benchmark cuts (ins, then d, …, hr)');
  return `${SHIP_SQL.slice(0, cut)}\n)${SHIP_SQL.slice(close)}`;
})();

/** The delta columns, in the rollups' stored order after the key: allocations, counters, incomplete. */
const DELTA = ['allocations', ...COUNTER_COLUMNS, 'incomplete'];
const v = (c: string) => `d_${c}`;
const isAlloc = (r: string) => `${r}.kind = 'allocation'`;
function contrib(r: string, c: string): string {
  if (c === 'allocations') return `CASE WHEN ${isAlloc(r)} THEN 1 ELSE 0 END`;
  if (c === 'incomplete') return `CASE WHEN ${isAlloc(r)} AND NOT ${r}.complete THEN 1 ELSE 0 END`;
  return `CASE WHEN ${isAlloc(r)} THEN ${r}.${c} ELSE 0 END`;
}
const nonZero = DELTA.map((c) => `${v(c)} <> 0`).join(' OR ');
/** The rollup's summed columns in SHIP_SQL's order, and the delta expression of each. */
const SUMMED: [string, string][] = [
  ...DELTA.filter((c) => c !== 'incomplete').map((c): [string, string] => [c, v(c)]),
  ['client_bytes', `${v('rcvb')} + ${v('sentb')}`],
  ['peer_bytes', `${v('peer_rcvb')} + ${v('peer_sentb')}`],
  ['incomplete', v('incomplete')],
];

/** One delta into the hourly and the monthly row of `hour` (a timestamp), as SHIP_SQL's rollupUpsert does it. */
function upserts(hour: string, r: string, pos: boolean): string {
  const one = (table: string, keyCol: string, key: string) => `
    INSERT INTO ${SCHEMA}.${table} AS t (${keyCol}, realm, client_id, ${SUMMED.map(([c]) => c).join(', ')}, hosts, host_ids)
    VALUES (${key}, ${r}.realm, ${r}.client_id, ${SUMMED.map(([, e]) => e).join(', ')},
            ${pos ? 1 : 0}, ${pos ? 'ARRAY[NEW.host_id]' : `'{}'::text[]`})
    ON CONFLICT (${keyCol}, realm, client_id) DO UPDATE SET ${SUMMED.map(([c]) => `${c} = t.${c} + excluded.${c}`).join(', ')},
       hosts = t.hosts + CASE WHEN excluded.hosts = 0 OR NEW.host_id = ANY(t.host_ids) THEN 0 ELSE 1 END,
       host_ids = CASE WHEN excluded.hosts = 0 OR NEW.host_id = ANY(t.host_ids) THEN t.host_ids ELSE t.host_ids || NEW.host_id END;`;
  return (
    one('client_usage_hourly', 'hour', hour) + one('client_usage_monthly', 'month', `date_trunc('month', ${hour})`)
  );
}
const hourOf = (r: string) => `date_trunc('hour', ${r}.last_event_at AT TIME ZONE 'UTC')`;

/** The trigger function and the trigger (on the partitioned parent: PostgreSQL clones it onto every partition). */
export const TRIGGER_SQL = `
  CREATE FUNCTION ${SCHEMA}.bench_rollup_row() RETURNS trigger LANGUAGE plpgsql AS $f$
  DECLARE
    same boolean;
    ${DELTA.map((c) => `${v(c)} bigint;`).join(' ')}
  BEGIN
    IF TG_OP = 'INSERT' THEN
      IF NOT ${isAlloc('NEW')} THEN RETURN NULL; END IF;
      ${DELTA.map((c) => `${v(c)} := ${c === 'allocations' ? '1' : c === 'incomplete' ? 'CASE WHEN NEW.complete THEN 0 ELSE 1 END' : `NEW.${c}`};`).join(' ')}
      ${upserts(hourOf('NEW'), 'NEW', true)}
      RETURN NULL;
    END IF;
    same := NEW.client_id = OLD.client_id AND NEW.realm IS NOT DISTINCT FROM OLD.realm;
    ${DELTA.map((c) => `${v(c)} := ${contrib('NEW', c)} - CASE WHEN same THEN ${contrib('OLD', c)} ELSE 0 END;`).join(' ')}
    IF ${nonZero} THEN
      ${upserts(hourOf('NEW'), 'NEW', true)}
    END IF;
    IF NOT same THEN
      ${DELTA.map((c) => `${v(c)} := -(${contrib('OLD', c)});`).join(' ')}
      IF ${nonZero} THEN
        ${upserts(hourOf('OLD'), 'OLD', false)}
      END IF;
    END IF;
    RETURN NULL;
  END $f$;
  CREATE TRIGGER bench_rollup AFTER INSERT OR UPDATE ON ${SCHEMA}.allocations
    FOR EACH ROW EXECUTE FUNCTION ${SCHEMA}.bench_rollup_row();`;
