/**
 * The JSON a TURN host publishes in its ephemeral node `<zookeeper.path>/<nodeName>`.
 * `freeTraffic` and `restAddr` are the two fields existing signalling servers read: their names
 * and meaning must not change.
 */
export interface HostPayload {
  /** capacityMbps − max(rxMbps, txMbps), one decimal, ≥ 0 (capacity until two readings exist). */
  freeTraffic: number;
  /** host:port of the monitor's HTTP API (GET /turncredential). */
  restAddr: string;
  /**
   * The same with its scheme: `https://host:port` with http.tls on, else `http://host:port`.
   * Absent in nodes of monitors older than it: use hostUrl().
   */
  restUrl?: string;
  turnUris: string[];
  rxMbps: number | null;
  txMbps: number | null;
  capacityMbps: number;
  /** Open allocations when the stats subsystem runs, else null. */
  allocations: number | null;
  serving: boolean;
  /** ISO time this payload was written. */
  updatedAt: string;
  /** turn-monitor package version of the publisher. */
  version: string;
}

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/**
 * Lenient reading for the selector: a node needs a numeric freeTraffic and a restAddr string (all
 * that existing signalling servers rely on); every other field is optional. null for anything else.
 */
export function parseHostPayload(data: Buffer | string | null | undefined): HostPayload | null {
  if (!data || data.length === 0) return null;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(data.toString());
  } catch {
    return null;
  }
  if (!raw || typeof raw !== 'object') return null;
  const free = numOrNull(raw.freeTraffic);
  if (free === null || typeof raw.restAddr !== 'string') return null;
  return {
    freeTraffic: free,
    restAddr: raw.restAddr,
    turnUris: Array.isArray(raw.turnUris) ? raw.turnUris.filter((u): u is string => typeof u === 'string') : [],
    rxMbps: numOrNull(raw.rxMbps),
    txMbps: numOrNull(raw.txMbps),
    capacityMbps: numOrNull(raw.capacityMbps) ?? 0,
    allocations: numOrNull(raw.allocations),
    serving: raw.serving !== false,
    updatedAt: typeof raw.updatedAt === 'string' ? raw.updatedAt : '',
    version: typeof raw.version === 'string' ? raw.version : '',
    ...(typeof raw.restUrl === 'string' && /^https?:\/\/[^/]+$/.test(raw.restUrl) ? { restUrl: raw.restUrl } : {}),
  };
}

/** The base URL of a host's API: restUrl, or http:// and restAddr for a node without one. */
export function hostUrl(h: Pick<HostPayload, 'restAddr' | 'restUrl'>): string {
  return h.restUrl ?? `http://${h.restAddr}`;
}
