// Worker thread of UsageQueries: reads usage pages on its own read-only connection, so that a
// query over a long history never holds the monitor's event loop (credentials, ingest, probes).
import { parentPort, workerData } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { CHUNK_CHARS, CHUNKS_IN_FLIGHT, type FromThread, type PageRequest, type ToThread } from './query-protocol.js';
import { UsageFormatter } from './usage-format.js';
import { openUsageReader, readView } from './usage-rows.js';
import type { Keyset } from './usage-sql.js';

const port = parentPort!;
const post = (m: FromThread) => port.postMessage(m);

let db: Database.Database;
try {
  db = openUsageReader((workerData as { file: string }).file);
  post({ type: 'ready' });
} catch (err) {
  post({ type: 'failed', message: (err as Error).message });
  process.exit(1);
}

const cancelled = new Set<number>();
/** Rows read between two looks at the message port (a cancel). */
const YIELD_EVERY_ROWS = 500;
const cancelledMeanwhile = async (id: number) => {
  await new Promise((resolve) => setImmediate(resolve));
  return cancelled.has(id);
};
const acked = new Map<number, number>();
const waiters = new Map<number, () => void>();
const queue: { id: number; request: PageRequest }[] = [];
let busy = false;

port.on('message', (m: ToThread) => {
  if (m.type === 'query') {
    queue.push(m);
    void drainQueue();
  } else if (m.type === 'ack') {
    acked.set(m.id, (acked.get(m.id) ?? 0) + 1);
    waiters.get(m.id)?.();
  } else {
    cancelled.add(m.id);
    waiters.get(m.id)?.();
  }
});

/** One query at a time: a connection reads one statement at a time. */
async function drainQueue(): Promise<void> {
  if (busy) return;
  busy = true;
  while (queue.length > 0) {
    const { id, request } = queue.shift()!;
    try {
      if (!cancelled.has(id)) await answer(id, request);
    } catch (err) {
      post({ type: 'error', id, message: (err as Error).message });
    }
    cancelled.delete(id);
    acked.delete(id);
  }
  busy = false;
}

/** Read the page (bounded by its limit), then send it in chunks at the pace the client takes them. */
async function answer(id: number, r: PageRequest): Promise<void> {
  const formatter = new UsageFormatter(r.format, '"rows":[');
  const texts: string[] = [];
  let rows = 0;
  let next: Keyset | null = null;
  let lastKey: Keyset | null = null;
  // One row more than the page: whether a next page exists, without counting the rest.
  for (const { row, key } of readView(db, { ...r, limit: r.limit + 1 })) {
    if (rows === r.limit) {
      next = lastKey;
      break;
    }
    texts.push(formatter.row(row));
    lastKey = key;
    // A client that went away stops the read (the loop's exit closes the statement).
    if (++rows % YIELD_EVERY_ROWS === 0 && (await cancelledMeanwhile(id))) return;
  }
  texts.push(formatter.end());
  post({ type: 'head', id, rows, next });
  let sent = 0;
  let piece = '';
  const flush = async () => {
    while (sent - (acked.get(id) ?? 0) >= CHUNKS_IN_FLIGHT && !cancelled.has(id))
      await new Promise<void>((resolve) => waiters.set(id, resolve));
    if (cancelled.has(id)) return false;
    post({ type: 'chunk', id, text: piece });
    sent++;
    piece = '';
    return true;
  };
  for (const t of texts) {
    piece += t;
    if (piece.length >= CHUNK_CHARS && !(await flush())) return;
  }
  if (piece.length > 0 && !(await flush())) return;
  post({ type: 'end', id });
}
