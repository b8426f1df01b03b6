// Worker thread of single-host quotas: sums a period of usage.db (read-only connection; WAL lets
// it read while the pipeline writes), so a month of history is never read on the event loop.
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

export interface UsageRequest {
  id: number;
  start: number;
  end: number;
  clientId: string | null;
}
export type UsageReply =
  { id: number; rows: { realm: string; clientId: string; used: number }[] } | { id: number; error: string };

const port = parentPort!;
const db = new Database((workerData as { file: string }).file, { readonly: true, fileMustExist: true });
db.pragma('busy_timeout = 5000');
// An allocation counts in every period it overlaps, with all of its bytes (open ones with their
// running counters as of the last checkpoint).
const where = `kind = 'allocation' AND (ended_at IS NULL OR ended_at >= @start) AND started_at < @end`;
const all = db.prepare(
  `SELECT coalesce(realm, '') AS realm, client_id AS clientId, sum(rcvb + sentb) AS used
     FROM allocations WHERE ${where} GROUP BY 1, 2`,
);
const one = db.prepare(
  `SELECT coalesce(realm, '') AS realm, client_id AS clientId, sum(rcvb + sentb) AS used
     FROM allocations WHERE client_id = @clientId AND ${where} GROUP BY 1, 2`,
);

port.on('message', (m: UsageRequest) => {
  try {
    const rows = (m.clientId === null ? all.all(m) : one.all(m)) as { realm: string; clientId: string; used: number }[];
    port.postMessage({ id: m.id, rows } satisfies UsageReply);
  } catch (err) {
    port.postMessage({ id: m.id, error: (err as Error).message } satisfies UsageReply);
  }
});
