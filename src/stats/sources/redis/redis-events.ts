import type { IncrementSink, StatusEvent, TrafficEvent, UsageEvent } from '../../events.js';

const ascii = (s: string) => Buffer.from(s, 'latin1');
// Longest first: '/traffic' is a suffix of '/total_traffic'.
const KINDS: [Buffer, UsageKind][] = (
  ['total_traffic/peer', 'traffic/peer', 'total_traffic', 'traffic', 'status'] as const
).map((k) => [ascii(`/${k}`), k]);
type UsageKind = 'status' | TrafficEvent['kind'];
const TURN = ascii('turn/');
const TURN_REALM = ascii('turn/realm/');
const USER = ascii('/user/');
const ALLOCATION = ascii('/allocation/');
const SLASH = 0x2f;

/** Who an allocation belongs to: decoded once from its topic, shared by all its events. */
interface Owner {
  /**
   * The topic's bytes up to the end of the allocation id. A latin1 string would take 75 bytes
   * less an allocation, but comparing it with charCodeAt cost ~50 ns an event more than this.
   */
  prefix: Buffer;
  realm: string | null;
  username: string;
  allocationId: string;
  /** The sink's handle for this allocation's increments (IncrementSink.track), once it gave one. */
  handle: object | null;
}

const MAX_OWNERS = 50_000;

/**
 * One copy of each of a few recurring strings (realms, relay addresses, transports): every
 * record would otherwise keep its own copy of the same text for as long as it is open.
 */
class Interner {
  private readonly seen = new Map<string, string>();
  of(s: string): string {
    const known = this.seen.get(s);
    if (known !== undefined) return known;
    if (this.seen.size >= 64) this.seen.clear(); // a bound, not a cache policy: these repeat
    this.seen.set(s, s);
    return s;
  }
}

/**
 * Parses coturn's redis-statsdb messages (topic and payload as the bytes Redis sent) into
 * UsageEvents, or null when one is not (coturn's `__XXX__` keepalives, foreign channels, malformed
 * payloads). Anchored on the end of the topic: usernames are verbatim and may be empty or contain
 * '/', ':' or even '/allocation/'. This runs for every event: it scans bytes in place (a topic
 * and its payload are ranges of one buffer), and the strings of an allocation (realm, username,
 * id) are decoded once and reused while its topic stays the same.
 */
export class RedisEventParser {
  // Keyed by a hash of the allocation id; the topic's bytes are compared too.
  private readonly owners = new Map<number, Owner>();
  // The kind of the topic topic() accepted last (a field, so the hot path allocates nothing).
  private kind: UsageKind = 'status';
  // Scratch state of the byte reader (what readCounts read, where countAt stopped): no allocation per event.
  private readonly counts: Counts = [0, 0, 0, 0];
  private cursor = 0;
  private readonly strings = new Interner();

  parse(channel: Buffer, message: Buffer, at: number): UsageEvent | null {
    const owner = this.topic(channel, 0, channel.length);
    return owner && this.eventOf(owner, this.kind, message, 0, message.length, at);
  }

  /**
   * Parse and deliver one message whose topic is buf[cs, ce) and payload buf[ce, me) (as the
   * Redis reader batches them); false when it is not a usage event. Increments of an allocation
   * the sink handed a handle for go straight onto it (most events on a busy host).
   */
  feed(buf: Buffer, cs: number, ce: number, me: number, at: number, sink: IncrementSink): boolean {
    const owner = this.topic(buf, cs, ce);
    if (owner === null) return false;
    const kind = this.kind;
    const counts = this.counts;
    if (owner.handle !== null && (kind === 'traffic' || kind === 'traffic/peer') && this.readCounts(buf, ce, me)) {
      if (sink.increment(owner.handle, kind === 'traffic/peer', counts[0], counts[1], counts[2], counts[3], at))
        return true;
    }
    const event = this.eventOf(owner, kind, buf, ce, me, at);
    if (event === null) return false;
    owner.handle = sink.track(event);
    return true;
  }

  /** The owner of the usage topic buf[cs, ce) (cached per allocation), its kind in this.kind; null if not one. */
  private topic(buf: Buffer, cs: number, ce: number): Owner | null {
    if (!bytesAt(buf, cs, ce, TURN)) return null;
    let kind: UsageKind | undefined;
    let idEnd = 0;
    for (const [suffix, k] of KINDS) {
      const at = ce - suffix.length;
      if (at >= cs && bytesAt(buf, at, ce, suffix)) {
        kind = k;
        idEnd = at;
        break;
      }
    }
    if (kind === undefined) return null;
    // A hash of the id's digits, kept a small integer (V8's fastest Map key); the prefix check makes it exact.
    let key = 0;
    for (let i = idEnd - 1; i >= cs && isDigit(buf[i]); i--) key = (Math.imul(key, 31) + buf[i]) & 0x3fffffff;
    let owner = this.owners.get(key);
    if (owner === undefined || !samePrefix(buf, cs, idEnd, owner.prefix)) {
      const parsed = parseOwner(buf.subarray(cs, idEnd), this.strings);
      if (!parsed) return null;
      if (this.owners.size >= MAX_OWNERS) this.owners.clear();
      this.owners.set(key, (owner = parsed));
    }
    // An allocation's last message: forget it.
    if (kind === 'total_traffic/peer') this.owners.delete(key);
    this.kind = kind;
    return owner;
  }

  private eventOf(owner: Owner, kind: UsageKind, buf: Buffer, ms: number, me: number, at: number): UsageEvent | null {
    if (kind !== 'status') {
      if (this.readCounts(buf, ms, me)) {
        const counts = this.counts;
        return {
          source: 'redis',
          at,
          realm: owner.realm,
          username: owner.username,
          allocationId: owner.allocationId,
          kind,
          rcvp: counts[0],
          rcvb: counts[1],
          sentp: counts[2],
          sentb: counts[3],
        };
      }
      return trafficFromText(owner, kind, buf.toString('utf8', ms, me), at);
    }
    return parseStatus(owner, buf, ms, me, at, this.strings);
  }

  /** The number after KEYS[k] at buf[i] (cursor moves past it), or -1 if the bytes differ. */
  private countAt(buf: Buffer, i: number, end: number, k: number): number {
    const key = KEYS[k];
    if (!bytesAt(buf, i, end, key)) return -1;
    i += key.length;
    const start = i;
    let v = 0;
    while (i < end && isDigit(buf[i])) v = v * 10 + (buf[i++] - 48);
    this.cursor = i;
    return i === start || i - start > 15 ? -1 : v;
  }

  /** buf[ms, me) is `rcvp=N, rcvb=N, sentp=N, sentb=N` in coturn's exact format, read into `counts`. */
  private readCounts(buf: Buffer, ms: number, me: number): boolean {
    this.cursor = ms;
    for (let k = 0; k < 4; k++) {
      const v = this.countAt(buf, this.cursor, me, k);
      if (v < 0) return false;
      this.counts[k] = v;
    }
    return this.cursor === me;
  }
}

/** Realm, username and allocation id of a topic without its kind suffix (`turn/…/allocation/<id>`). */
function parseOwner(prefix: Buffer, strings: Interner): Owner | null {
  const idEnd = prefix.length;
  let idStart = idEnd;
  while (idStart > 0 && isDigit(prefix[idStart - 1])) idStart--;
  const ownerEnd = idStart - ALLOCATION.length;
  if (idStart === idEnd || !bytesAt(prefix, ownerEnd, idEnd, ALLOCATION)) return null;
  let realm: string | null = null;
  let userAt: number;
  if (bytesAt(prefix, 0, idEnd, TURN_REALM)) {
    const slash = prefix.indexOf(SLASH, TURN_REALM.length);
    if (slash < 0 || slash + USER.length > ownerEnd || !bytesAt(prefix, slash, idEnd, USER)) return null;
    realm = strings.of(prefix.toString('utf8', TURN_REALM.length, slash));
    userAt = slash;
  } else {
    userAt = TURN.length - 1;
    if (userAt + USER.length > ownerEnd || !bytesAt(prefix, userAt, idEnd, USER)) return null;
  }
  return {
    prefix: Buffer.from(prefix),
    realm,
    username: prefix.toString('utf8', userAt + USER.length, ownerEnd),
    allocationId: prefix.toString('latin1', idStart, idEnd),
    handle: null,
  };
}

/** buf[cs, idEnd) is exactly prefix (compared from the id backwards: that is where topics differ). */
function samePrefix(buf: Buffer, cs: number, idEnd: number, prefix: Buffer): boolean {
  if (prefix.length !== idEnd - cs) return false;
  for (let i = prefix.length - 1; i >= 0; i--) if (buf[cs + i] !== prefix[i]) return false;
  return true;
}

/** One message given as strings (tests, trace replays). */
export function parseRedisEvent(channel: string, message: string, at: number): UsageEvent | null {
  return new RedisEventParser().parse(Buffer.from(channel), Buffer.from(message), at);
}

/** pattern lies at buf[at, …) within [0, end). */
function bytesAt(buf: Buffer, at: number, end: number, pattern: Buffer): boolean {
  if (at < 0 || at + pattern.length > end) return false;
  for (let i = 0; i < pattern.length; i++) if (buf[at + i] !== pattern[i]) return false;
  return true;
}

const isDigit = (c: number) => c >= 48 && c <= 57;

function isDigits(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

const STATUSES = (['new', 'refreshed', 'deleted'] as const).map((s) => [ascii(s), s] as const);
const COMMA = 0x2c;
const EQUALS = 0x3d;

/**
 * `new lifetime=600, type=UDP, local=…, remote=…, …`, `refreshed …` or `deleted` at buf[ms, me);
 * older coturn sends only `new lifetime=N`. Read field by field from the bytes (',' and '=' are
 * never part of a multi-byte UTF-8 character), each wanted value decoded on its own: the record
 * keeps its addresses as strings of their own, not as slices that keep the whole message alive.
 */
function parseStatus(o: Owner, buf: Buffer, ms: number, me: number, at: number, strings: Interner): StatusEvent | null {
  let status: StatusEvent['status'] | null = null;
  for (const [bytes, s] of STATUSES) if (status === null && bytesAt(buf, ms, me, bytes)) status = s;
  if (status === null) return null;
  let lifetimeText: string | undefined;
  let transport: string | null = null;
  let local: string | null = null;
  let remote: string | null = null;
  for (let i = ms + status.length; i < me;) {
    let end = i;
    let eq = -1;
    for (; end < me && buf[end] !== COMMA; end++) if (eq < 0 && buf[end] === EQUALS) eq = end;
    const key = eq > i ? buf.toString('utf8', i, eq).trim() : '';
    if (key === 'lifetime' || key === 'type' || key === 'local' || key === 'remote') {
      const value = buf.toString('utf8', eq + 1, end).trim();
      if (key === 'lifetime') lifetimeText = value;
      // coturn says `TLS/TCP` for an allocation made over TLS: recorded as `TLS`.
      else if (key === 'type') transport = strings.of(value === 'TLS/TCP' ? 'TLS' : value);
      else if (key === 'local') local = strings.of(value);
      else remote = value;
    }
    i = end + 1;
  }
  const lifetime = lifetimeText !== undefined ? Number(lifetimeText) : null;
  if (lifetime !== null && !Number.isFinite(lifetime)) return null;
  return {
    source: 'redis',
    at,
    realm: o.realm,
    username: o.username,
    allocationId: o.allocationId,
    kind: 'status',
    status,
    lifetime,
    transport,
    local,
    remote,
  };
}

type Counts = [number, number, number, number];
const KEYS = ['rcvp=', ', rcvb=', ', sentp=', ', sentb='].map(ascii);

/** The four counters in any order and spacing; any missing or non-numeric one makes it malformed. */
function trafficFromText(o: Owner, kind: TrafficEvent['kind'], message: string, at: number): TrafficEvent | null {
  const c = slowCounters(message);
  if (!c) return null;
  return {
    source: 'redis',
    at,
    realm: o.realm,
    username: o.username,
    allocationId: o.allocationId,
    kind,
    rcvp: c[0],
    rcvb: c[1],
    sentp: c[2],
    sentb: c[3],
  };
}

/** Any order and spacing of the four fields. */
function slowCounters(message: string): Counts | null {
  const f: Record<string, string> = {};
  forEachField(message, 0, (key, value) => (f[key] = value));
  const c: Counts = [toCount(f.rcvp), toCount(f.rcvb), toCount(f.sentp), toCount(f.sentb)];
  return c.some((v) => v < 0) ? null : c;
}

function toCount(v: string | undefined): number {
  if (v === undefined || v.length === 0 || v.length > 15 || !isDigits(v)) return -1;
  return Number(v);
}

/** Each `key=value` of a comma-separated list from `from` on, both trimmed (coturn's status and traffic payloads). */
function forEachField(text: string, from: number, visit: (key: string, value: string) => void): void {
  for (let i = from; i < text.length;) {
    let end = text.indexOf(',', i);
    if (end < 0) end = text.length;
    const eq = text.indexOf('=', i);
    if (eq > i && eq < end) visit(text.slice(i, eq).trim(), text.slice(eq + 1, end).trim());
    i = end + 1;
  }
}
