import { UsageStore } from '../../src/stats/store.js';

export interface HistoryShape {
  /** Closed allocations to write. */
  rows: number;
  /** Distinct client ids they are spread over. */
  clients: number;
  /** They end before this (ms) and start within `spanMs` before it. */
  endAt: number;
  spanMs: number;
  realm?: string;
}

/**
 * Closed allocations generated straight into a usage.db with the monitor's own schema (its store
 * creates or migrates the file): one INSERT … SELECT over a recursive sequence, a million rows in
 * seconds. Starts are spread evenly (a deterministic shuffle of clients), each lasting 1–600 s.
 */
export function generateHistory(file: string, shape: HistoryShape): void {
  const store = new UsageStore(file);
  try {
    const step = shape.spanMs / shape.rows;
    store.db.exec('BEGIN');
    store.db
      .prepare(
        `WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < @rows),
         gen AS (SELECT i, CAST(@start + i * @step AS INTEGER) AS s, 1000 + (i * 7919) % 599000 AS d,
                   'c' || ((i * 2654435761) % CAST(@clients AS INTEGER)) AS client FROM seq)
         INSERT INTO allocations (run, allocation_id, kind, realm, username, client_id, transport, local, remote,
           lifetime, started_at, ended_at, last_event_at, end_reason, end_detail, rcvp, rcvb, sentp, sentb,
           peer_rcvp, peer_rcvb, peer_sentp, peer_sentb, complete)
         SELECT 'generated', printf('%018d', i), 'allocation', @realm, client, client, 'UDP', NULL, NULL, 600,
           s, s + d, s + d, 'deleted', NULL, 10 + i % 90, 1000 + i % 9000, 10 + i % 80, 1000 + i % 8000,
           i % 70, i % 7000, i % 60, i % 6000, 1
         FROM gen`,
      )
      .run({
        rows: shape.rows,
        start: shape.endAt - shape.spanMs - 600_000,
        step,
        clients: shape.clients,
        realm: shape.realm ?? 'test.local',
      });
    store.db.exec('COMMIT');
  } finally {
    store.close();
  }
}
