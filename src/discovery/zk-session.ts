import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import zookeeper from 'node-zookeeper-client';
import { Backoff } from '../process/backoff.js';
import { connectStringProblem } from '../config/connect-string.js';

type Client = zookeeper.Client;
type LogFn = (obj: object, msg?: string) => void;
/** What the session logs through (a pino logger fits; the selector library defaults to silence). */
export interface MiniLogger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
}

export const silentLogger: MiniLogger = { debug() {}, info() {}, warn() {}, error() {} };

export type ZkState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface ZkSessionEvents {
  connected: [{ sessionId: string; sameSession: boolean }];
  disconnected: [];
  expired: [];
  /** A call missed its deadline: the connection is dropped and resumed. */
  unresponsive: [];
  state: [ZkState];
}

export interface ZkSessionOptions {
  connect: string;
  sessionTimeoutMs: number;
  logger: MiniLogger;
  /** Gap before a new client after a failed attempt: capped doubling (default 250 ms → 5 s). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /**
   * "user:password": every client of the session authenticates with the digest scheme (again
   * after a new session), and every node created through createNode() gets digestAcl(user).
   */
  auth?: string | null;
}

/** ZooKeeper's digest id of `user:password`: `user:base64(sha1(user:password))`. */
export function digestId(auth: string): string {
  const user = auth.slice(0, auth.indexOf(':'));
  return `${user}:${createHash('sha1').update(auth).digest('base64')}`;
}

/**
 * The ACL of every node the monitor creates with zookeeper.auth set: the digest user may do
 * everything, the world may read (signalling servers and the selector read without
 * credentials). Without auth: open, as ZooKeeper's default.
 */
export function nodeAcl(auth: string | null | undefined): zookeeper.ACL[] {
  if (!auth) return (zookeeper.ACL as unknown as { OPEN_ACL_UNSAFE: zookeeper.ACL[] }).OPEN_ACL_UNSAFE;
  return [
    new zookeeper.ACL(zookeeper.Permission.ALL, new zookeeper.Id('digest', digestId(auth))),
    new zookeeper.ACL(zookeeper.Permission.READ, new zookeeper.Id('world', 'anyone')),
  ];
}

/** A call that got no answer in time: the server is frozen or the link is dead. */
export class ZkTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`ZooKeeper ${what}: no answer within ${ms} ms`);
    this.name = 'ZkTimeoutError';
  }
}

export class ZkNotConnectedError extends Error {
  constructor() {
    super('not connected to ZooKeeper');
    this.name = 'ZkNotConnectedError';
  }
}

/** The ZooKeeper error code of a failed call (NO_NODE, NODE_EXISTS …), if it is one. */
export function zkErrorCode(err: unknown): number | null {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : null;
}
export const ZkCode = zookeeper.Exception;

/** What node-zookeeper-client keeps privately: its socket (the only way to force a reconnect) and data handler. */
interface ConnectionManager {
  socket?: { destroy(): void };
  onSocketData?: (buffer: Buffer) => void;
}
const connectionManagerOf = (c: Client) =>
  (c as unknown as { connectionManager?: ConnectionManager }).connectionManager;

function socketOf(c: Client): { destroy(): void } | null {
  return connectionManagerOf(c)?.socket ?? null;
}

/**
 * node-zookeeper-client throws from its socket's data handler on bytes it cannot decode (e.g. a
 * port that another server answers): an uncaught exception. Such bytes drop that connection
 * instead, which the client treats as any lost connection.
 */
function guardSocketData(c: Client, onBadData: (err: Error) => void): void {
  const cm = connectionManagerOf(c);
  const original = cm?.onSocketData;
  if (!cm || !original) return;
  cm.onSocketData = (buffer: Buffer) => {
    try {
      original.call(cm, buffer);
    } catch (err) {
      onBadData(err as Error);
      cm.socket?.destroy();
    }
  };
}

/**
 * One logical ZooKeeper session that survives everything: connects in the background with capped
 * backoff between attempts, replaces the client after `expired` (that object is dead), and runs
 * a watchdog because the library has no read timeout (a frozen server never causes a
 * 'disconnected'): every call has a deadline, and a heartbeat call runs every third of the
 * session timeout. A missed deadline drops the socket so the library reconnects with the same
 * session; an attempt that does not connect within the session timeout is abandoned for a new
 * client.
 */
export class ZkSession extends EventEmitter<ZkSessionEvents> {
  private client: Client | null = null;
  private current: ZkState = 'idle';
  private sessionHex: string | null = null;
  private readonly ownSessions = new Set<string>();
  private readonly backoff: Backoff;
  private windowTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeatInFlight = false;
  private failedAttempts = 0;
  private negotiatedMs: number;
  lastError: string | null = null;
  expiries = 0;

  constructor(private readonly opts: ZkSessionOptions) {
    super();
    const problem = connectStringProblem(opts.connect);
    if (problem) throw new Error(`ZooKeeper connect string: ${problem}`);
    this.backoff = new Backoff(opts.backoffBaseMs ?? 250, opts.backoffMaxMs ?? 5000);
    this.negotiatedMs = opts.sessionTimeoutMs;
  }

  get state(): ZkState {
    return this.current;
  }
  /** Hex id of the current (or last) session. */
  get sessionId(): string | null {
    return this.sessionHex;
  }
  /** Whether a session id (hex, e.g. a node's ephemeralOwner) was opened by this object. */
  ownsSession(hex: string): boolean {
    return this.ownSessions.has(hex);
  }
  /** Deadline of one call: two thirds of the session timeout, as ZooKeeper's own clients use. */
  get callTimeoutMs(): number {
    return Math.max(300, Math.floor((this.negotiatedMs * 2) / 3));
  }

  /** Start connecting in the background; never throws, never waits. */
  start(): void {
    if (this.current !== 'idle') return;
    this.newClient();
  }

  private setState(state: ZkState): void {
    if (this.current === state) return;
    this.current = state;
    this.emit('state', state);
  }

  private newClient(): void {
    this.retryTimer = null;
    if (this.current === 'closed') return;
    const c = zookeeper.createClient(this.opts.connect, {
      sessionTimeout: this.opts.sessionTimeoutMs,
      spinDelay: Math.min(1000, Math.max(100, Math.floor(this.opts.sessionTimeoutMs / 4))),
      retries: 0,
    });
    this.client = c;
    if (this.opts.auth) c.addAuthInfo('digest', Buffer.from(this.opts.auth));
    guardSocketData(c, (err) =>
      this.opts.logger.warn(
        { event: 'zk-bad-data', reason: err.message },
        'undecodable bytes from ZooKeeper; reconnecting',
      ),
    );
    this.setState('connecting');
    c.on('connected', () => this.onConnected(c));
    c.on('disconnected', () => this.onDisconnected(c));
    c.on('expired', () => this.onExpired(c));
    c.connect();
    this.armWindow(c);
  }

  /** A client that is not connected within the session timeout is abandoned for a new one. */
  private armWindow(c: Client): void {
    this.clearWindow();
    const ms = Math.max(1000, this.opts.sessionTimeoutMs);
    this.windowTimer = setTimeout(() => {
      this.windowTimer = null;
      if (this.client !== c || this.current === 'connected') return;
      const delayMs = this.backoff.next();
      this.lastError = `no ZooKeeper session within ${ms} ms from ${this.opts.connect}`;
      // Warn once per outage; the repeats go to debug so a long outage does not flood the log.
      const level = this.failedAttempts++ === 0 ? 'warn' : 'debug';
      this.opts.logger[level](
        { event: 'zk-connect-failed', connect: this.opts.connect, retryInMs: delayMs, attempts: this.failedAttempts },
        `${this.lastError}; retrying`,
      );
      this.replace(c, delayMs);
    }, ms);
  }

  private clearWindow(): void {
    if (this.windowTimer) clearTimeout(this.windowTimer);
    this.windowTimer = null;
  }

  private replace(c: Client, delayMs: number): void {
    if (this.client === c) this.client = null;
    this.stopHeartbeat();
    this.clearWindow();
    discard(c, this.opts.sessionTimeoutMs);
    if (this.current === 'closed') return;
    this.setState('connecting');
    this.retryTimer = setTimeout(() => this.newClient(), delayMs);
  }

  private onConnected(c: Client): void {
    if (this.client !== c || this.current === 'closed') return;
    this.clearWindow();
    this.backoff.reset();
    this.failedAttempts = 0;
    this.lastError = null;
    this.negotiatedMs = c.getSessionTimeout();
    const id = c.getSessionId().toString('hex');
    const sameSession = id === this.sessionHex;
    this.sessionHex = id;
    this.ownSessions.add(id);
    this.setState('connected');
    this.opts.logger.info(
      {
        event: 'zk-connected',
        connect: this.opts.connect,
        sessionId: id,
        sameSession,
        sessionTimeoutMs: this.negotiatedMs,
      },
      sameSession ? 'ZooKeeper reconnected (same session)' : 'ZooKeeper session established',
    );
    this.startHeartbeat();
    this.emit('connected', { sessionId: id, sameSession });
  }

  private onDisconnected(c: Client): void {
    if (this.client !== c || this.current === 'closed') return;
    this.stopHeartbeat();
    this.setState('disconnected');
    this.lastError = 'disconnected from ZooKeeper';
    this.opts.logger.warn(
      { event: 'zk-disconnected', connect: this.opts.connect, sessionId: this.sessionHex },
      'ZooKeeper connection lost; reconnecting',
    );
    this.emit('disconnected');
    this.armWindow(c);
  }

  private onExpired(c: Client): void {
    if (this.client !== c || this.current === 'closed') return;
    this.expiries++;
    this.lastError = 'ZooKeeper session expired';
    this.opts.logger.warn(
      { event: 'zk-expired', sessionId: this.sessionHex },
      'ZooKeeper session expired: starting a new one',
    );
    this.emit('expired');
    // The server answered, so no backoff: the new session should exist at once.
    this.replace(c, 0);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const period = Math.max(100, Math.floor(this.negotiatedMs / 3));
    this.heartbeatTimer = setInterval(() => {
      if (this.heartbeatInFlight) return;
      this.heartbeatInFlight = true;
      this.call<unknown>('heartbeat', (cl, done) => cl.exists('/', done))
        .catch(() => undefined)
        .finally(() => (this.heartbeatInFlight = false));
    }, period);
    this.heartbeatTimer.unref();
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /** The watchdog fired: drop the socket; the library reconnects and the window guards that. */
  private onUnresponsive(c: Client, what: string): void {
    if (this.client !== c || this.current !== 'connected') return;
    this.lastError = `ZooKeeper stopped answering (${what} got no answer within ${this.callTimeoutMs} ms)`;
    this.opts.logger.error(
      { event: 'zk-unresponsive', op: what, timeoutMs: this.callTimeoutMs, sessionId: this.sessionHex },
      this.lastError,
    );
    this.emit('unresponsive');
    try {
      socketOf(c)?.destroy();
    } catch {
      /* already gone */
    }
  }

  /**
   * Run one operation on the connected client with a deadline. Rejects at once when not
   * connected (callers retry on the next 'connected'), with ZkTimeoutError when the server does
   * not answer in time (which also trips the watchdog).
   */
  call<T>(what: string, op: (client: Client, done: (err: unknown, result?: T) => void) => void): Promise<T> {
    const c = this.client;
    if (!c || this.current !== 'connected') return Promise.reject(new ZkNotConnectedError());
    const ms = this.callTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new ZkTimeoutError(what, ms));
        this.onUnresponsive(c, what);
      }, ms);
      try {
        op(c, (err, result) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (err) reject(err);
          else resolve(result as T);
        });
      } catch (err) {
        // A bad argument (invalid path): the library throws before sending anything.
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
  }

  /**
   * Create a node and any missing parent, all with this session's ACL (nodeAcl): every node the
   * monitor creates goes through here, so none is left open when zookeeper.auth is set. (A
   * parent that already exists keeps its ACL: README, Security, says how to set it.)
   */
  async createNode(nodePath: string, data: Buffer | null, mode: number): Promise<string> {
    const acl = nodeAcl(this.opts.auth);
    await this.ensurePath(path.posix.dirname(nodePath));
    return this.call<string>('create', (c, done) =>
      data === null ? c.create(nodePath, acl, mode, done) : c.create(nodePath, data, acl, mode, done),
    );
  }

  /** `nodePath` and its missing parents as persistent nodes with this session's ACL (no error when it exists). */
  async ensurePath(nodePath: string): Promise<void> {
    if (nodePath === '/') return;
    const acl = nodeAcl(this.opts.auth);
    await this.call<string>('mkdirp', (c, done) => c.mkdirp(nodePath, acl, done));
  }

  /** Close the session (the server drops its ephemeral nodes); waits at most `timeoutMs`. */
  async close(timeoutMs = 1000): Promise<void> {
    if (this.current === 'closed') return;
    const c = this.client;
    const wasConnected = this.current === 'connected';
    this.setState('closed');
    this.client = null;
    this.clearWindow();
    this.stopHeartbeat();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (!c) return;
    if (wasConnected) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        c.once('disconnected', () => {
          clearTimeout(timer);
          resolve();
        });
        c.close();
      });
      discard(c, this.opts.sessionTimeoutMs, false);
    } else {
      discard(c, this.opts.sessionTimeoutMs);
    }
  }
}

/**
 * Make sure a client we gave up on holds no socket: close it, then destroy whatever socket it
 * still has, also after its reconnect spin delay (it may open one from a pending timer).
 */
function discard(c: Client, sessionTimeoutMs: number, sendClose = true): void {
  c.removeAllListeners('connected');
  c.removeAllListeners('disconnected');
  c.removeAllListeners('expired');
  if (sendClose) {
    try {
      c.close();
    } catch {
      /* not connected */
    }
  }
  const kill = () => {
    try {
      socketOf(c)?.destroy();
    } catch {
      /* gone */
    }
  };
  setTimeout(kill, 200).unref();
  setTimeout(kill, Math.min(1000, Math.max(100, Math.floor(sessionTimeoutMs / 4))) + 300).unref();
}
