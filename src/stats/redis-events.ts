import type { StatusEvent, TrafficEvent, UsageEvent } from './events.js';

const KINDS = ['/total_traffic/peer', '/total_traffic', '/traffic/peer', '/traffic', '/status'] as const;
const ALLOCATION = '/allocation/';

/**
 * Parse one coturn redis-statsdb message into a UsageEvent, or null when it is not one (coturn's
 * `__XXX__` keepalives, foreign channels, malformed payloads). Anchored on the end of the topic:
 * usernames are verbatim and may be empty or contain '/', ':' or even '/allocation/'.
 * Written without regexes on the hot path: this runs for every event.
 */
export function parseRedisEvent(channel: string, message: string, at: number): UsageEvent | null {
  if (!channel.startsWith('turn/')) return null;
  let kind: (typeof KINDS)[number] | undefined;
  for (const k of KINDS) {
    if (channel.endsWith(k)) {
      kind = k;
      break;
    }
  }
  if (!kind) return null;
  const head = channel.slice(0, channel.length - kind.length);
  const a = head.lastIndexOf(ALLOCATION);
  if (a < 0) return null;
  const allocationId = head.slice(a + ALLOCATION.length);
  if (allocationId.length === 0 || !isDigits(allocationId)) return null;
  const owner = head.slice(0, a);
  let realm: string | null = null;
  let userPart: string;
  if (owner.startsWith('turn/realm/')) {
    const slash = owner.indexOf('/', 11);
    if (slash < 0 || !owner.startsWith('/user/', slash)) return null;
    realm = owner.slice(11, slash);
    userPart = owner.slice(slash);
  } else {
    userPart = owner.slice(4);
  }
  if (!userPart.startsWith('/user/')) return null;
  const base: Base = { source: 'redis', at, realm, username: userPart.slice(6), allocationId };
  return kind === '/status' ? parseStatus(base, message) : parseTraffic(base, kind.slice(1) as TrafficEvent['kind'], message);
}

function isDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

type Base = Pick<StatusEvent, 'source' | 'at' | 'realm' | 'username' | 'allocationId'>;

/** `new lifetime=600, type=UDP, local=…, remote=…, …`, `refreshed …` or `deleted`; older coturn sends only `new lifetime=N`. */
export function parseStatus(base: Base, message: string): StatusEvent | null {
  const status = message.startsWith('new') ? 'new' : message.startsWith('refreshed') ? 'refreshed' : message.startsWith('deleted') ? 'deleted' : null;
  if (!status) return null;
  const fields = parseFields(message.slice(status.length));
  const lifetime = fields.lifetime !== undefined ? Number(fields.lifetime) : null;
  if (lifetime !== null && !Number.isFinite(lifetime)) return null;
  return {
    ...base,
    kind: 'status',
    status,
    lifetime,
    transport: fields.type ?? null,
    local: fields.local ?? null,
    remote: fields.remote ?? null,
  };
}

/** `rcvp=N, rcvb=N, sentp=N, sentb=N`; any missing or non-numeric counter makes it malformed. */
export function parseTraffic(base: Base, kind: TrafficEvent['kind'], message: string): TrafficEvent | null {
  const c = fastCounters(message) ?? slowCounters(message);
  if (!c) return null;
  // A literal (not a spread of base): this runs for most events and V8 builds it much faster.
  return { source: base.source, at: base.at, realm: base.realm, username: base.username, allocationId: base.allocationId, kind, rcvp: c[0], rcvb: c[1], sentp: c[2], sentb: c[3] };
}

const KEYS = ['rcvp=', ', rcvb=', ', sentp=', ', sentb='];

/** coturn's exact format, scanned without allocating; null on any deviation. */
function fastCounters(m: string): [number, number, number, number] | null {
  const out: [number, number, number, number] = [0, 0, 0, 0];
  let i = 0;
  for (let k = 0; k < 4; k++) {
    if (!m.startsWith(KEYS[k], i)) return null;
    i += KEYS[k].length;
    const start = i;
    let v = 0;
    for (let c = m.charCodeAt(i); c >= 48 && c <= 57; c = m.charCodeAt(++i)) v = v * 10 + (c - 48);
    if (i === start || i - start > 15) return null;
    out[k] = v;
  }
  return i === m.length ? out : null;
}

/** Any order and spacing of the four fields. */
function slowCounters(message: string): [number, number, number, number] | null {
  const f = parseFields(message);
  const c: [number, number, number, number] = [toCount(f.rcvp), toCount(f.rcvb), toCount(f.sentp), toCount(f.sentb)];
  return c.some((v) => v < 0) ? null : c;
}

function toCount(v: string | undefined): number {
  if (v === undefined || v.length === 0 || v.length > 15 || !isDigits(v)) return -1;
  return Number(v);
}

function parseFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) out[part.slice(0, eq).trim()] = part.slice(eq + 1).trim();
  }
  return out;
}

/** The client id a username is accounted under: after the first ':' of a REST-style name. */
export function clientIdOf(username: string): string {
  const colon = username.indexOf(':');
  return colon > 0 && isDigits(username.slice(0, colon)) ? username.slice(colon + 1) : username;
}
