import type { UsageFormat } from './usage-format.js';
import type { Keyset, UsageFilter, UsageView } from './usage-sql.js';

/** One page of a view, as the HTTP API asks for it. */
export interface PageRequest {
  view: UsageView;
  filter: UsageFilter;
  after: Keyset | null;
  limit: number;
  format: UsageFormat;
  now: number;
}

export type ToThread =
  { type: 'query'; id: number; request: PageRequest } | { type: 'ack'; id: number } | { type: 'cancel'; id: number };

export type FromThread =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  /** The page is read: its row count and the next page's key (null: last page); chunks follow. */
  | { type: 'head'; id: number; rows: number; next: Keyset | null }
  | { type: 'chunk'; id: number; text: string }
  | { type: 'end'; id: number }
  | { type: 'error'; id: number; message: string };

/** Chunks a thread may have sent and not yet seen acknowledged (the HTTP client's pace). */
export const CHUNKS_IN_FLIGHT = 4;
/** Text per chunk, roughly. */
export const CHUNK_CHARS = 64 * 1024;
