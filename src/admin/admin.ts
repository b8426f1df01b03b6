import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { Subsystem, SubsystemHealth, TurnConfContributor } from '../lifecycle.js';
import type { Logger } from '../log/logger.js';
import type { ChildState } from '../process/child-types.js';
import { freePort } from '../process/ports.js';
import { AdminUnavailableError, CliClient, type AdminStatus } from './cli-client.js';
import { parsePs, type CliSession } from './ps-parser.js';

export { AdminUnavailableError, type AdminStatus, type CliSession };

/** What the admin channel needs of the turnserver supervisor: when a child serves and when it is gone. */
export interface TurnserverLifecycle {
  on(event: 'ready' | 'exit' | 'adopted', listener: () => void): unknown;
  on(event: 'state', listener: (state: ChildState) => void): unknown;
  off(event: 'ready' | 'exit' | 'adopted', listener: () => void): unknown;
  off(event: 'state', listener: (state: ChildState) => void): unknown;
}

export interface AdminEvents {
  /** The channel's status changed; 'connected' also after every reconnect (a new turnserver run). */
  status: [AdminStatus];
}

export interface AdminOptions {
  config: Config;
  logger: Logger;
  registry: Registry;
  turnserver: TurnserverLifecycle;
  /** The rendered turnserver.conf: an adopted turnserver's CLI port and password are read from it. */
  confFile?: string;
  /** Default deadline of one command (ms). */
  deadlineMs?: number;
}

// Listing every session needs this above the live count: coturn lists 256 by default and cuts the rest.
const MAX_OUTPUT_SESSIONS = 1_000_000;
const ALLOCATION_ID = /^\d{1,20}$/;

/**
 * The monitor's use of coturn's admin CLI (telnet, loopback only): it renders the cli-* lines of
 * turnserver.conf with a fresh random password for every turnserver start, keeps one logged-in
 * connection (reconnected after every restart) and offers typed commands over it. It knows
 * nothing of credentials, usage or HTTP; the composition root connects those.
 */
export class Admin extends EventEmitter<AdminEvents> implements Subsystem, TurnConfContributor {
  readonly name = 'admin';
  private port: number | null;
  private password: string | null = null;
  private client: CliClient | null = null;
  private readonly log: Logger;
  private readonly commands: Counter;
  private started = false;
  private adoptable: { port: number; password: string } | null = null;

  constructor(private readonly opts: AdminOptions) {
    super();
    this.log = opts.logger.child({ component: 'admin' });
    this.port = opts.config.turnserver.cliPort;
    this.commands = new Counter({
      name: 'turn_monitor_admin_commands_total',
      help: "commands sent to coturn's admin CLI, by command and result",
      labelNames: ['command', 'result'],
      registers: [opts.registry],
    });
    const connected = new Gauge({
      name: 'turn_monitor_admin_connected',
      help: '1 while the admin CLI connection is logged in',
      registers: [opts.registry],
    });
    connected.set(0);
    this.on('status', (st) => connected.set(st === 'connected' ? 1 : 0));
  }

  get status(): AdminStatus {
    return this.client?.status ?? 'down';
  }

  /** The cli-* lines, with a new password for every spawn of turnserver. */
  turnConfLines(purpose: 'spawn' | 'compare' = 'spawn'): string[] {
    if (this.port === null) return ['no-cli'];
    if (purpose === 'spawn' || this.password === null) this.password = randomBytes(24).toString('hex'); // 192 bits
    return [
      'cli-ip=127.0.0.1',
      `cli-port=${this.port}`,
      `cli-password=${this.password}`,
      `cli-max-output-sessions=${MAX_OUTPUT_SESSIONS}`,
    ];
  }

  async start(): Promise<void> {
    // A turnserver left serving by an earlier monitor may be adopted: it listens with these.
    this.adoptable = this.opts.confFile ? cliOf(this.opts.confFile) : null;
    this.port ??= this.adoptable?.port ?? (await freePort());
    this.client = new CliClient({
      host: '127.0.0.1',
      port: this.port,
      password: () => this.password,
      logger: this.log,
      deadlineMs: this.opts.deadlineMs,
      onResult: (command, result) => this.commands.labels(command, result).inc(),
    });
    this.client.on('status', this.onStatus);
    this.client.start();
    this.opts.turnserver.on('ready', this.onReady);
    this.opts.turnserver.on('exit', this.onExit);
    this.opts.turnserver.on('state', this.onState);
    this.opts.turnserver.on('adopted', this.onAdopted);
    this.started = true;
  }

  private readonly onStatus = (s: AdminStatus): void => void this.emit('status', s);
  private readonly onReady = (): void => this.client?.resume();
  private readonly onExit = (): void => this.client?.pause();
  // A planned stop or restart closes the CLI connection on purpose: no reconnect, no warning.
  private readonly onState = (state: ChildState): void => {
    if (state === 'stopping' || state === 'restarting') this.client?.pause();
  };
  private readonly onAdopted = (): void => {
    if (this.adoptable && this.adoptable.port === this.port) this.password = this.adoptable.password;
  };

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.opts.turnserver.off('ready', this.onReady);
    this.opts.turnserver.off('exit', this.onExit);
    this.opts.turnserver.off('state', this.onState);
    this.opts.turnserver.off('adopted', this.onAdopted);
    this.client?.off('status', this.onStatus);
    this.client?.stop();
  }

  /** Any CLI command (one line); resolves with coturn's answer without the prompt. */
  command(text: string, options: { deadlineMs?: number } = {}): Promise<string> {
    if (!this.client) return Promise.reject(new AdminUnavailableError('admin channel not started'));
    return this.client.command(text, options);
  }

  /**
   * Every live allocation (`ps`), or those whose username contains `usernamePart` (`psp`, a
   * substring match: filter the result for an exact one). Never cut at cli-max-output-sessions:
   * a cut listing raises the limit and is made again.
   */
  async sessions(options: { usernamePart?: string; deadlineMs?: number } = {}): Promise<CliSession[]> {
    const part = options.usernamePart;
    if (part !== undefined && !/^[^\s\r\n]+$/.test(part)) throw new Error('usernamePart must be one word');
    const text = part === undefined ? 'ps' : `psp ${part}`;
    let listing = parsePs(await this.command(text, options));
    if (listing.truncated) {
      this.log.warn(
        { event: 'ps-truncated', total: listing.total },
        'coturn cut the session listing: raising cli-max-output-sessions',
      );
      await this.command(`cc cli-max-output-sessions ${MAX_OUTPUT_SESSIONS}`, options);
      listing = parsePs(await this.command(text, options));
    }
    return listing.sessions;
  }

  /** Cancel one allocation if coturn has it (`cs`); false when it has none of that id. */
  async cancel(allocationId: string, options: { deadlineMs?: number } = {}): Promise<boolean> {
    if (!ALLOCATION_ID.test(allocationId)) return false;
    const live = await this.sessions(options);
    if (!live.some((s) => s.allocationId === allocationId)) return false;
    await this.command(`cs ${allocationId}`, options);
    return true;
  }

  /** Cancel allocations known to be live (no check: `cs` of a gone id is a no-op in coturn). */
  async cancelMany(allocationIds: readonly string[], options: { deadlineMs?: number } = {}): Promise<void> {
    for (const id of allocationIds) if (ALLOCATION_ID.test(id)) await this.command(`cs ${id}`, options);
  }

  /** `cc total-quota N`: at most N allocations on this server (0 = no limit); new ones beyond get 486. */
  async setTotalQuota(n: number, options: { deadlineMs?: number } = {}): Promise<void> {
    await this.command(`cc total-quota ${quota(n)}`, options);
  }

  /** `cc user-quota N`: at most N allocations per user (REST usernames: per client id); 0 = no limit. */
  async setUserQuota(n: number, options: { deadlineMs?: number } = {}): Promise<void> {
    await this.command(`cc user-quota ${quota(n)}`, options);
  }

  health(): SubsystemHealth {
    const s = this.status;
    // 'connecting' is the normal moment after every turnserver start: only a channel that keeps failing degrades.
    return { status: s === 'down' && this.started ? 'degraded' : 'ok', admin: s, port: this.port };
  }
}

function quota(n: number): number {
  if (!Number.isInteger(n) || n < 0) throw new Error('a quota is an integer ≥ 0');
  return n;
}

/** The CLI port and password of a rendered conf, or null (none yet, or no CLI in it). */
function cliOf(confFile: string): { port: number; password: string } | null {
  let text: string;
  try {
    text = readFileSync(confFile, 'utf8');
  } catch {
    return null;
  }
  const port = Number(/^cli-port=(\d+)$/m.exec(text)?.[1]);
  const password = /^cli-password=(\S+)$/m.exec(text)?.[1];
  return port > 0 && password ? { port, password } : null;
}
