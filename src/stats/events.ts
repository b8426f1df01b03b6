/**
 * One fact about a TURN allocation, whichever source saw it (coturn's redis-statsdb PUBLISHes or
 * turnserver's own log lines). Sources turn their input into these; the allocation model consumes
 * them and never knows where they came from.
 */
export type UsageEvent = StatusEvent | TrafficEvent | ClosedEvent;

export type UsageSource = 'redis' | 'log';

interface EventBase {
  source: UsageSource;
  /** When we received it (ms since epoch). */
  at: number;
  /** null when turnserver runs without a realm in the topic. */
  realm: string | null;
  /** Verbatim; may be empty (TCP relay data connections) or contain '/', ':' or spaces. */
  username: string;
  /** coturn's allocation id as printed (18 digits); unique only within one turnserver run. */
  allocationId: string;
}

export interface StatusEvent extends EventBase {
  kind: 'status';
  status: 'new' | 'refreshed' | 'deleted';
  lifetime: number | null;
  transport: string | null;
  local: string | null;
  remote: string | null;
}

/** `traffic*` are increments since the last report; `total_traffic*` are totals sent on delete. */
export interface TrafficEvent extends EventBase {
  kind: 'traffic' | 'traffic/peer' | 'total_traffic' | 'total_traffic/peer';
  rcvp: number;
  rcvb: number;
  sentp: number;
  sentb: number;
}

/** From the log only: `closed (2nd stage)` with the reason and addresses. */
export interface ClosedEvent extends EventBase {
  kind: 'closed';
  reason: string;
  local: string | null;
  remote: string | null;
}

/** Where sources deliver events; the stats subsystem stamps each with the current turnserver run. */
export interface UsageSink {
  ingest(event: UsageEvent): void;
}

/**
 * The Redis hot path (most events are `traffic` increments of an allocation already seen): the
 * sink hands out a handle to an allocation's record, and later increments go straight onto it
 * without an event object.
 */
export interface IncrementSink extends UsageSink {
  /** Like ingest; returns a handle for increment(), or null when this allocation's increments must come as events. */
  track(event: UsageEvent): object | null;
  /** A `traffic` (peer: `traffic/peer`) increment onto a handle; false when the handle went stale: send the event instead. */
  increment(
    handle: object,
    peer: boolean,
    rcvp: number,
    rcvb: number,
    sentp: number,
    sentb: number,
    at: number,
  ): boolean;
}
