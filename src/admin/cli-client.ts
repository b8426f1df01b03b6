import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Logger } from '../log/logger.js';
import { Backoff } from '../process/backoff.js';

export type AdminStatus = 'connected' | 'connecting' | 'down';

/** A command that could not be answered in time: turnserver restarting, CLI wedged or not yet connected. */
export class AdminUnavailableError extends Error {
  readonly code = 'admin_unavailable';
  constructor(message: string) {
    super(message);
    this.name = 'AdminUnavailableError';
  }
}

export interface CliClientOptions {
  host: string;
  port: number;
  /** The password of the current turnserver run (it changes with every spawn). Never logged. */
  password: () => string | null;
  logger: Logger;
  /** Default deadline of one command, from the moment it is queued. */
  deadlineMs?: number;
  /** Deadline of a connect + login attempt. */
  loginTimeoutMs?: number;
  /** Called with the first word of every command and how it ended (metrics). */
  onResult?: (command: string, result: 'ok' | 'unavailable' | 'error') => void;
}

interface Pending {
  text: string;
  resolve: (answer: string) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  sent: boolean;
}

export interface CliClientEvents {
  status: [AdminStatus];
}

const PROMPT = '> ';
// An answer is complete when it ends with the prompt at the start of a line (or is the bare prompt).
const complete = (buf: string) => buf === PROMPT || buf.endsWith(`\n${PROMPT}`);
const FAILURES_BEFORE_DOWN = 3;

/**
 * One persistent connection to coturn's telnet admin CLI: login, then one command at a time
 * from a queue, each with a deadline counted from when it was queued. A command whose answer
 * does not come in time is rejected with AdminUnavailableError and, if it had been sent, the
 * connection is dropped (a late answer would be taken for the next command's). Lost
 * connections are re-made with capped backoff; `pause()` stops trying (turnserver is down)
 * until `resume()`.
 */
export class CliClient extends EventEmitter<CliClientEvents> {
  private socket: net.Socket | null = null;
  private loggedIn = false;
  /** Login exchange so far (small). */
  private buffer = '';
  /**
   * An answer so far, as chunks: coturn writes `ps` line by line, and appending each line to one
   * string while testing its end flattens the whole string every time (quadratic in its length).
   */
  private chunks: string[] = [];
  private answerLength = 0;
  private tail = '';
  private readonly queue: Pending[] = [];
  private readonly backoff = new Backoff(100, 2000);
  private retryTimer: NodeJS.Timeout | null = null;
  private loginTimer: NodeJS.Timeout | null = null;
  private failures = 0;
  private running = false;
  private paused = true;
  private currentStatus: AdminStatus = 'down';
  private readonly log: Logger;

  constructor(private readonly opts: CliClientOptions) {
    super();
    this.log = opts.logger;
  }

  get status(): AdminStatus {
    return this.currentStatus;
  }

  /** Start keeping a connection (once resumed). */
  start(): void {
    this.running = true;
  }

  /** turnserver serves (again): connect now. */
  resume(): void {
    if (!this.running) return;
    this.paused = false;
    this.failures = 0;
    this.backoff.reset();
    this.dropSocket();
    this.connect();
  }

  /** turnserver is gone: drop the connection and stop trying until resume(). Queued commands wait out their deadlines. */
  pause(): void {
    this.paused = true;
    this.dropSocket();
    this.setStatus('down');
  }

  stop(): void {
    this.running = false;
    this.paused = true;
    this.dropSocket();
    for (const p of this.queue.splice(0)) {
      clearTimeout(p.timer);
      p.reject(new AdminUnavailableError('admin channel stopped'));
    }
    this.setStatus('down');
  }

  /** Send one command line; resolves with its answer (prompt removed). */
  command(text: string, options: { deadlineMs?: number } = {}): Promise<string> {
    if (/[\r\n]/.test(text)) return Promise.reject(new Error('an admin command is a single line'));
    if (!this.running) return Promise.reject(new AdminUnavailableError('admin channel not running'));
    const deadlineMs = options.deadlineMs ?? this.opts.deadlineMs ?? 3000;
    const word = text.split(' ')[0];
    return new Promise<string>((resolve, reject) => {
      const p: Pending = {
        text,
        sent: false,
        resolve: (answer) => {
          this.opts.onResult?.(word, 'ok');
          resolve(answer);
        },
        reject: (err) => {
          this.opts.onResult?.(word, err instanceof AdminUnavailableError ? 'unavailable' : 'error');
          reject(err);
        },
        timer: setTimeout(() => this.expire(p, deadlineMs), deadlineMs),
      };
      this.queue.push(p);
      this.pump();
    });
  }

  private expire(p: Pending, deadlineMs: number): void {
    const i = this.queue.indexOf(p);
    if (i < 0) return;
    this.queue.splice(i, 1);
    const word = p.text.split(' ')[0];
    p.reject(
      new AdminUnavailableError(
        `admin command "${word}" not answered within ${deadlineMs} ms (admin channel ${this.currentStatus})`,
      ),
    );
    if (p.sent) {
      this.log.warn({ event: 'admin-wedged', command: word }, 'admin CLI did not answer in time: reconnecting');
      this.reconnectSoon();
    }
  }

  private setStatus(s: AdminStatus): void {
    if (s === this.currentStatus) return;
    this.currentStatus = s;
    this.emit('status', s);
  }

  private connect(): void {
    if (!this.running || this.paused || this.socket) return;
    this.setStatus(this.failures >= FAILURES_BEFORE_DOWN ? 'down' : 'connecting');
    const password = this.opts.password();
    if (!password) return this.reconnectSoon();
    const socket = net.connect(this.opts.port, this.opts.host);
    this.socket = socket;
    this.loggedIn = false;
    this.buffer = '';
    let passwordSent = false;
    socket.setEncoding('utf8');
    socket.setNoDelay(true);
    this.loginTimer = setTimeout(() => this.failed(socket, 'login timed out'), this.opts.loginTimeoutMs ?? 2000);
    socket.on('data', (d: string) => {
      if (socket !== this.socket) return;
      if (this.loggedIn) return this.onAnswerData(d);
      this.buffer += d;
      if (!passwordSent && /Enter password: ?\r?\n?$/.test(this.buffer)) {
        passwordSent = true;
        this.buffer = '';
        socket.write(`${password}\r\n`);
      } else if (passwordSent && this.buffer.includes('Enter password')) {
        this.failed(socket, 'login refused');
      } else if (passwordSent && complete(this.buffer)) {
        this.buffer = '';
        this.loggedIn = true;
        if (this.loginTimer) clearTimeout(this.loginTimer);
        this.failures = 0;
        this.backoff.reset();
        this.log.info({ event: 'admin-connected', port: this.opts.port }, 'admin CLI connected');
        this.setStatus('connected');
        this.pump();
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => this.failed(socket, err.code ?? 'socket error'));
    socket.on('close', () => this.failed(socket, 'connection closed'));
  }

  private failed(socket: net.Socket, why: string): void {
    if (socket !== this.socket) return;
    const wasConnected = this.loggedIn;
    this.dropSocket();
    if (!wasConnected) this.failures++;
    if (!this.paused)
      this.log[wasConnected ? 'warn' : 'debug'](
        { event: 'admin-disconnected', why, failures: this.failures },
        'admin CLI connection lost',
      );
    this.reconnectSoon();
  }

  private reconnectSoon(): void {
    this.dropSocket();
    if (!this.running || this.paused) return;
    this.setStatus(this.failures >= FAILURES_BEFORE_DOWN ? 'down' : 'connecting');
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, this.backoff.next());
  }

  private dropSocket(): void {
    if (this.loginTimer) clearTimeout(this.loginTimer);
    this.loginTimer = null;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const s = this.socket;
    this.socket = null;
    this.loggedIn = false;
    this.buffer = '';
    this.resetAnswer();
    s?.destroy();
    // A command sent on a lost connection is sent again on the next one (all of ours are idempotent).
    for (const p of this.queue) p.sent = false;
  }

  private resetAnswer(): void {
    this.chunks = [];
    this.answerLength = 0;
    this.tail = '';
  }

  private onAnswerData(d: string): void {
    const head = this.queue[0];
    if (!head?.sent) return; // unsolicited output
    this.chunks.push(d);
    this.answerLength += d.length;
    this.tail = (this.tail + d).slice(-(PROMPT.length + 1));
    // The whole answer is the bare prompt, or ends with the prompt at the start of a line.
    if (!(this.answerLength === PROMPT.length ? this.tail === PROMPT : this.tail === `\n${PROMPT}`)) return;
    const answer = this.chunks.join('').slice(0, -PROMPT.length);
    this.resetAnswer();
    this.queue.shift();
    clearTimeout(head.timer);
    head.resolve(answer);
    this.pump();
  }

  private pump(): void {
    const head = this.queue[0];
    if (!head || head.sent || !this.loggedIn || !this.socket) return;
    head.sent = true;
    this.socket.write(`${head.text}\r\n`);
  }
}
