import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import type { Logger } from '../log/logger.js';
import type { UsageSink } from './events.js';
import { RedisEventParser } from './redis-events.js';

const UNDERSCORE = 0x5f;

export type SubscriberState = 'connecting' | 'subscribed' | 'disconnected' | 'stopped';

/** Where coturn should publish and we subscribe; the password never reaches a log line. */
export interface RedisTarget {
  host: string;
  port: number;
  db: number;
  password: string | null;
  tls: boolean;
}

export function redisTargetFromUrl(url: string): RedisTarget {
  const u = new URL(url);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: Number(u.port || 6379),
    db: Number(u.pathname.slice(1) || 0),
    password: u.password ? decodeURIComponent(u.password) : null,
    tls: u.protocol === 'rediss:',
  };
}

/** The turnserver.conf line that makes coturn publish to this Redis. */
export function statsdbLine(t: RedisTarget): string {
  const password = t.password ? ` password=${t.password}` : '';
  return `redis-statsdb="ip=${t.host} port=${t.port} dbname=${t.db}${password} connect_timeout=30"`;
}

/**
 * Subscribes to coturn's redis-statsdb events (psubscribe 'turn/*') and hands each parsed event to
 * the sink. ioredis reconnects and resubscribes by itself; every loss is reported ('gap') because
 * events published meanwhile are gone. Events: 'state', 'gap', 'malformed'.
 */
export class RedisSource extends EventEmitter {
  private client: Redis | null = null;
  state: SubscriberState = 'connecting';
  reconnects = 0;
  received = 0;
  private everSubscribed = false;
  private readonly parser = new RedisEventParser();

  constructor(
    private readonly target: RedisTarget,
    private readonly sink: UsageSink,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    super();
  }

  /** Resolves once subscribed (or right away if Redis is not up yet: it keeps retrying). */
  async start(): Promise<void> {
    const client = new Redis({
      host: this.target.host,
      port: this.target.port,
      password: this.target.password ?? undefined,
      tls: this.target.tls ? {} : undefined,
      lazyConnect: true,
      maxRetriesPerRequest: null,
      enableOfflineQueue: true,
      retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 3000),
    });
    this.client = client;
    // The Buffer variant: ioredis then skips decoding topic and payload into strings we don't need.
    client.on('pmessageBuffer', (_pattern: string, channel: Buffer, message: Buffer) => {
      this.received++;
      const event = this.parser.parse(channel, message, this.now());
      if (event) this.sink.ingest(event);
      else if (!(channel[0] === UNDERSCORE && channel[1] === UNDERSCORE)) this.emit('malformed', channel.toString());
    });
    client.on('ready', () => this.onReady());
    client.on('close', () => this.onLost());
    client.on('error', (err: Error) => this.log.debug({ event: 'redis-error', err: err.message }, 'redis subscriber error'));
    try {
      await client.connect();
      await client.psubscribe('turn/*');
      this.setState('subscribed');
    } catch (err) {
      this.log.warn({ event: 'redis-unavailable', err: (err as Error).message }, 'redis not reachable yet: retrying');
    }
  }

  private onReady(): void {
    if (this.everSubscribed) {
      this.reconnects++;
      this.log.warn({ event: 'redis-resubscribed', reconnects: this.reconnects }, 'redis subscriber reconnected and resubscribed');
    }
    this.everSubscribed = true;
    this.setState('subscribed');
  }

  private onLost(): void {
    if (this.state === 'stopped' || this.state === 'disconnected') return;
    this.setState('disconnected');
    this.log.error({ event: 'redis-lost' }, 'redis subscriber lost its connection: events are being missed');
    this.emit('gap');
  }

  private setState(state: SubscriberState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', state);
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    const client = this.client;
    this.client = null;
    if (!client) return;
    client.disconnect();
  }
}
