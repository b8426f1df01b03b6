import type { StatusEvent, TrafficEvent, UsageEvent } from './events.js';

const ascii = (s: string) => Buffer.from(s, 'latin1');
// Longest first: '/traffic' is a suffix of '/total_traffic'.
const KINDS: [Buffer, UsageKind][] = (['total_traffic/peer', 'traffic/peer', 'total_traffic', 'traffic', 'status'] as const).map(
  (k) => [ascii(`/${k}`), k],
);
type UsageKind = 'status' | TrafficEvent['kind'];
const TURN = ascii('turn/');
const TURN_REALM = ascii('turn/realm/');
const USER = ascii('/user/');
const ALLOCATION = ascii('/allocation/');
const SLASH = 0x2f;

/** Who an allocation belongs to: decoded once from its topic, shared by all its events. */
interface Owner {
  /** The topic's bytes up to the end of the allocation id. */
  prefix: Buffer;
  realm: string | null;
  username: string;
  allocationId: string;
}

const MAX_OWNERS = 50_000;

/**
 * Parses coturn's redis-statsdb messages (topic and payload as the bytes ioredis received) into
 * UsageEvents, or null when one is not (coturn's `__XXX__` keepalives, foreign channels, malformed
 * payloads). Anchored on the end of the topic: usernames are verbatim and may be empty or contain
 * '/', ':' or even '/allocation/'. This runs for every event: it scans bytes, and the strings of
 * an allocation (realm, username, id) are decoded once and reused while its topic stays the same.
 */
export class RedisEventParser {
  // Keyed by the allocation id's value (lossy above 2^53, so the prefix bytes are compared too).
  private readonly owners = new Map<number, Owner>();

  parse(channel: Buffer, message: Buffer, at: number): UsageEvent | null {
    const n = channel.length;
    if (!bytesAt(channel, 0, TURN)) return null;
    let kind: UsageKind | undefined;
    let idEnd = 0;
    for (const [suffix, k] of KINDS) {
      if (bytesAt(channel, n - suffix.length, suffix)) {
        kind = k;
        idEnd = n - suffix.length;
        break;
      }
    }
    if (kind === undefined) return null;
    let key = 0;
    for (let i = idEnd - 1, scale = 1; i >= 0 && isDigit(channel[i]); i--, scale *= 10) key += (channel[i] - 48) * scale;
    let owner = this.owners.get(key);
    if (owner === undefined || !samePrefix(channel, idEnd, owner.prefix)) {
      const parsed = parseOwner(channel, idEnd);
      if (!parsed) return null;
      if (this.owners.size >= MAX_OWNERS) this.owners.clear();
      this.owners.set(key, (owner = parsed));
    }
    // An allocation's last message: forget it.
    if (kind === 'total_traffic/peer') this.owners.delete(key);
    if (kind !== 'status') return trafficFromBytes(owner, kind, message, at) ?? trafficFromText(owner, kind, message.toString('utf8'), at);
    const base: Base = { source: 'redis', at, realm: owner.realm, username: owner.username, allocationId: owner.allocationId };
    return parseStatus(base, message.toString('utf8'));
  }
}

/** Realm, username and allocation id of a topic whose kind suffix starts at idEnd. */
function parseOwner(channel: Buffer, idEnd: number): Owner | null {
  let idStart = idEnd;
  while (idStart > 0 && isDigit(channel[idStart - 1])) idStart--;
  const ownerEnd = idStart - ALLOCATION.length;
  if (idStart === idEnd || !bytesAt(channel, ownerEnd, ALLOCATION)) return null;
  let realm: string | null = null;
  let userAt: number;
  if (bytesAt(channel, 0, TURN_REALM)) {
    const slash = channel.indexOf(SLASH, TURN_REALM.length);
    if (slash < 0 || slash + USER.length > ownerEnd || !bytesAt(channel, slash, USER)) return null;
    realm = channel.toString('utf8', TURN_REALM.length, slash);
    userAt = slash;
  } else {
    userAt = TURN.length - 1;
    if (userAt + USER.length > ownerEnd || !bytesAt(channel, userAt, USER)) return null;
  }
  return {
    prefix: Buffer.from(channel.subarray(0, idEnd)),
    realm,
    username: channel.toString('utf8', userAt + USER.length, ownerEnd),
    allocationId: channel.toString('latin1', idStart, idEnd),
  };
}

/** The channel's bytes before its kind suffix are exactly prefix (compared from the id backwards). */
function samePrefix(channel: Buffer, idEnd: number, prefix: Buffer): boolean {
  if (prefix.length !== idEnd) return false;
  for (let i = idEnd - 1; i >= 0; i--) if (channel[i] !== prefix[i]) return false;
  return true;
}

/** One message given as strings (tests, trace replays). */
export function parseRedisEvent(channel: string, message: string, at: number): UsageEvent | null {
  return new RedisEventParser().parse(Buffer.from(channel), Buffer.from(message), at);
}

function bytesAt(buf: Buffer, at: number, pattern: Buffer): boolean {
  if (at < 0 || at + pattern.length > buf.length) return false;
  for (let i = 0; i < pattern.length; i++) if (buf[at + i] !== pattern[i]) return false;
  return true;
}

const isDigit = (c: number) => c >= 48 && c <= 57;

function isDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

type Base = Pick<StatusEvent, 'source' | 'at' | 'realm' | 'username' | 'allocationId'>;

/** `new lifetime=600, type=UDP, local=…, remote=…, …`, `refreshed …` or `deleted`; older coturn sends only `new lifetime=N`. */
function parseStatus(base: Base, message: string): StatusEvent | null {
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

type Counts = [number, number, number, number];
const KEYS = ['rcvp=', ', rcvb=', ', sentp=', ', sentb='].map(ascii);
// Where countAt stopped: a scratch cursor, so reading a number allocates nothing.
let cursor = 0;

/** The number after KEYS[k] at i (cursor moves past it), or -1 if the bytes differ. */
function countAt(m: Buffer, i: number, k: number): number {
  const key = KEYS[k];
  if (!bytesAt(m, i, key)) return -1;
  i += key.length;
  const start = i;
  let v = 0;
  while (i < m.length && isDigit(m[i])) v = v * 10 + (m[i++] - 48);
  cursor = i;
  return i === start || i - start > 15 ? -1 : v;
}

/**
 * `rcvp=N, rcvb=N, sentp=N, sentb=N` in coturn's exact format, read from the bytes straight into
 * the event (most events are these); null on any deviation, for the tolerant text parser.
 */
function trafficFromBytes(o: Owner, kind: TrafficEvent['kind'], m: Buffer, at: number): TrafficEvent | null {
  const rcvp = countAt(m, 0, 0);
  if (rcvp < 0) return null;
  const rcvb = countAt(m, cursor, 1);
  if (rcvb < 0) return null;
  const sentp = countAt(m, cursor, 2);
  if (sentp < 0) return null;
  const sentb = countAt(m, cursor, 3);
  if (sentb < 0 || cursor !== m.length) return null;
  return { source: 'redis', at, realm: o.realm, username: o.username, allocationId: o.allocationId, kind, rcvp, rcvb, sentp, sentb };
}

/** The four counters in any order and spacing; any missing or non-numeric one makes it malformed. */
function trafficFromText(o: Owner, kind: TrafficEvent['kind'], message: string, at: number): TrafficEvent | null {
  const c = slowCounters(message);
  if (!c) return null;
  return { source: 'redis', at, realm: o.realm, username: o.username, allocationId: o.allocationId, kind, rcvp: c[0], rcvb: c[1], sentp: c[2], sentb: c[3] };
}

/** Any order and spacing of the four fields. */
function slowCounters(message: string): Counts | null {
  const f = parseFields(message);
  const c: Counts = [toCount(f.rcvp), toCount(f.rcvb), toCount(f.sentp), toCount(f.sentb)];
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
