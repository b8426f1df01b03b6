import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';

const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const MAGIC_COOKIE = 0x2112a442;

/** A 20-byte STUN Binding request (RFC 5389) with a random transaction id. */
export function bindingRequest(): { packet: Buffer; transactionId: Buffer } {
  const packet = Buffer.alloc(20);
  packet.writeUInt16BE(BINDING_REQUEST, 0);
  packet.writeUInt16BE(0, 2);
  packet.writeUInt32BE(MAGIC_COOKIE, 4);
  const transactionId = randomBytes(12);
  transactionId.copy(packet, 8);
  return { packet, transactionId };
}

/** True when the buffer is a STUN Binding success response to this transaction. */
export function isBindingResponse(msg: Buffer, transactionId: Buffer): boolean {
  return (
    msg.length >= 20 &&
    msg.readUInt16BE(0) === BINDING_SUCCESS &&
    msg.readUInt32BE(4) === MAGIC_COOKIE &&
    msg.subarray(8, 20).equals(transactionId)
  );
}

/** The address to probe: a wildcard listener is reached through loopback. */
export function probeHost(listeningIp: string): string {
  if (listeningIp === '0.0.0.0') return '127.0.0.1';
  if (listeningIp === '::') return '::1';
  return listeningIp;
}

/**
 * Send one STUN Binding request over UDP and resolve true on a matching answer, false on timeout.
 * This is what "serving" means: turnserver has no ready log line.
 */
export function stunProbe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const { packet, transactionId } = bindingRequest();
    let settled = false;
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(resend);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    const send = () => socket.send(packet, port, host, (err) => err && finish(false));
    // Until the server has bound its port the datagrams are dropped (no error on an unconnected
    // socket): resend a few times, at least every 20 ms, so a server coming up is seen at once.
    const resend = setInterval(send, Math.max(20, Math.floor(timeoutMs / 4)));
    socket.on('message', (msg) => {
      if (isBindingResponse(msg, transactionId)) finish(true);
    });
    socket.on('error', () => finish(false));
    send();
  });
}

/**
 * How long an address our probes were sent from counts as ours. coturn drops a session that never
 * allocated about 60 s after it began and only then reports its usage; the stats side decides at
 * the record's close, which for the Redis source can come 120 s after that report.
 */
const OWN_ADDRESS_MS = 5 * 60_000;

/** coturn's `ip:port` of a session's remote, comparable with ours (an IPv6 address may come bracketed). */
export function normalizeAddress(address: string): string {
  const m = /^\[([^\]]*)\]:(\d+)$/.exec(address);
  return (m ? `${m[1]}:${m[2]}` : address).toLowerCase();
}

/**
 * The supervisor's STUN probe: one UDP socket bound once (a fixed local port on the probe host,
 * bound again only after it failed), so every probe comes from one known address and the stats
 * side can leave the coturn sessions our probes open out of the usage records (OwnProbes in
 * stats/unattributed.ts). A fresh socket per probe would open a coturn session per probe; with
 * one socket coturn still drops and reopens the session about once a minute.
 */
export class StunProber {
  private socket: dgram.Socket | null = null;
  private binding: Promise<dgram.Socket | null> | null = null;
  /** Probes waiting for an answer, by transaction id (hex). */
  private readonly waiting = new Map<string, (ok: boolean) => void>();
  /** Addresses probes were sent from (normalised) → when last; oldest first. */
  private readonly used = new Map<string, number>();
  private lastSentAt: number | null = null;
  private closed = false;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The address the probes are sent from now (null before the first probe bound the socket). */
  get address(): string | null {
    if (!this.socket) return null;
    try {
      const a = this.socket.address();
      return `${a.address}:${a.port}`;
    } catch {
      return null;
    }
  }

  /** One Binding request, resent until answered: true on the answer, false on timeout. */
  async probe(timeoutMs: number): Promise<boolean> {
    const socket = await this.bound();
    if (!socket) return false;
    const { packet, transactionId } = bindingRequest();
    const key = transactionId.toString('hex');
    const from = this.address;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (ok: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(resend);
        this.waiting.delete(key);
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), timeoutMs);
      const send = () => {
        if (from) this.noteAddress(from);
        socket.send(packet, this.port, this.host, (err) => err && finish(false));
      };
      // As stunProbe: resend until the server has bound its port and answers.
      const resend = setInterval(send, Math.max(20, Math.floor(timeoutMs / 4)));
      this.waiting.set(key, finish);
      send();
    });
  }

  /** A probe went out from `address` (the TLS probe's connection, say): its coturn session is ours too. */
  noteAddress(address: string): void {
    const now = this.now();
    const key = normalizeAddress(address);
    this.lastSentAt = now;
    this.used.delete(key);
    this.used.set(key, now);
    for (const [a, at] of this.used) {
      if (now - at <= OWN_ADDRESS_MS) break;
      this.used.delete(a);
    }
  }

  isOwnAddress(address: string): boolean {
    const at = this.used.get(normalizeAddress(address));
    return at !== undefined && this.now() - at <= OWN_ADDRESS_MS;
  }

  running(): boolean {
    return this.lastSentAt !== null && this.now() - this.lastSentAt <= OWN_ADDRESS_MS;
  }

  /** Close the socket (the addresses used stay known, for sessions coturn reports later). */
  close(): void {
    this.closed = true;
    this.drop();
  }

  private bound(): Promise<dgram.Socket | null> {
    if (this.closed) return Promise.resolve(null);
    if (this.socket) return Promise.resolve(this.socket);
    this.binding ??= new Promise((resolve) => {
      const socket = dgram.createSocket(isIPv6(this.host) ? 'udp6' : 'udp4');
      const failed = () => {
        try {
          socket.close();
        } catch {
          /* never bound */
        }
        this.binding = null;
        resolve(null);
      };
      socket.once('error', failed);
      socket.bind({ address: this.host, port: 0 }, () => {
        socket.off('error', failed);
        // A failing socket is dropped; the next probe binds a new one.
        socket.on('error', () => this.drop(socket));
        socket.on('message', (msg) => this.answer(msg));
        socket.unref();
        this.binding = null;
        if (this.closed) {
          socket.close();
          resolve(null);
          return;
        }
        this.socket = socket;
        resolve(socket);
      });
    });
    return this.binding;
  }

  private answer(msg: Buffer): void {
    if (msg.length < 20 || msg.readUInt16BE(0) !== BINDING_SUCCESS || msg.readUInt32BE(4) !== MAGIC_COOKIE) return;
    this.waiting.get(msg.toString('hex', 8, 20))?.(true);
  }

  private drop(which: dgram.Socket | null = this.socket): void {
    if (!which || which !== this.socket) return;
    this.socket = null;
    for (const finish of [...this.waiting.values()]) finish(false);
    try {
      which.close();
    } catch {
      /* already closed */
    }
  }
}
