import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../../../log/logger.js';
import { workerEntry } from '../../../util/worker-entry.js';
import type { IncrementSink } from '../../events.js';
import { RedisEventParser } from './redis-events.js';
import {
  CONSUMED,
  FLOW_BYTES,
  forEachEntry,
  PAUSED,
  type ReaderInit,
  type ReaderMessage,
  type SourceCommand,
} from './redis-reader-protocol.js';

// Its garbage is short-lived protocol buffers: a small young generation keeps RSS flat.
const READER_YOUNG_GEN_MB = 6;
const readerEntry = workerEntry(import.meta.url, 'redis-reader');

const UNDERSCORE = 0x5f;

export type SubscriberState = 'connecting' | 'subscribed' | 'disconnected' | 'stopped';

export interface RedisSourceEvents {
  state: [SubscriberState];
  /** Events were lost (connection or reader lost): open records may be incomplete. */
  gap: [];
  /** A message on a turn/ channel that is not a usage event (its topic). */
  malformed: [string];
}

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
 * the sink. The ioredis client runs in a worker thread (redis-reader.ts) that passes the raw
 * messages over in batches; parsing and the sink stay on this thread, in arrival order. ioredis
 * reconnects and resubscribes by itself; every loss is reported ('gap') because events published
 * meanwhile are gone. A worker that dies is a loss too, and is started again after a pause.
 */
export class RedisSource extends EventEmitter<RedisSourceEvents> {
  state: SubscriberState = 'connecting';
  reconnects = 0;
  received = 0;
  private worker: Worker | null = null;
  private everSubscribed = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private readerRestarts = 0;
  private readonly parser = new RedisEventParser();

  constructor(
    private readonly target: RedisTarget,
    private readonly sink: IncrementSink,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    super();
  }

  /** Resolves once subscribed, or once the first attempt failed (the reader keeps retrying). */
  start(): Promise<void> {
    const { host, port, password, tls } = this.target;
    const flow = new Int32Array(new SharedArrayBuffer(FLOW_BYTES));
    const worker = new Worker(readerEntry.code, {
      eval: readerEntry.eval,
      workerData: { host, port, password, tls, flow: flow.buffer as SharedArrayBuffer } satisfies ReaderInit,
      resourceLimits: { maxYoungGenerationSizeMb: READER_YOUNG_GEN_MB },
    });
    this.worker = worker;
    return new Promise((resolve) => {
      worker.on('message', (m: ReaderMessage) => {
        this.onMessage(worker, flow, m);
        if (m.type === 'subscribed' || m.type === 'unavailable') resolve();
      });
      worker.on('error', (err) =>
        this.log.error({ event: 'redis-reader-failed', err: err.message }, 'the redis reader thread failed'),
      );
      worker.on('exit', () => {
        resolve();
        if (this.worker !== worker) return;
        this.worker = null;
        if (this.state === 'stopped') return;
        this.onLost();
        // Capped backoff: a reader that cannot even start must not spin.
        const delay = Math.min(1000 * 2 ** this.readerRestarts++, 30_000);
        this.log.warn(
          { event: 'redis-reader-restart', delayMs: delay },
          `restarting the redis reader thread in ${delay} ms`,
        );
        this.restartTimer = setTimeout(() => void this.start(), delay);
      });
    });
  }

  private onMessage(worker: Worker, flow: Int32Array, m: ReaderMessage): void {
    switch (m.type) {
      case 'batch':
        this.consume(Buffer.from(m.buffer));
        this.received += m.count;
        Atomics.add(flow, CONSUMED, 1);
        if (Atomics.load(flow, PAUSED) === 1) worker.postMessage({ type: 'resume' } satisfies SourceCommand);
        break;
      case 'subscribed': // a reader's first subscription (a restarted reader's counts as a reconnection)
      case 'ready': // ioredis reconnected and resubscribed
        this.onReady();
        break;
      case 'close':
        this.onLost();
        break;
      case 'error':
        this.log.debug({ event: 'redis-error', err: m.message }, 'redis subscriber error');
        break;
      case 'unavailable':
        this.log.warn({ event: 'redis-unavailable', err: m.message }, 'redis not reachable yet: retrying');
        break;
    }
  }

  private consume(buf: Buffer): void {
    const at = this.now();
    forEachEntry(buf, (b, cs, ce, me) => {
      if (!this.parser.feed(b, cs, ce, me, at, this.sink) && !(b[cs] === UNDERSCORE && b[cs + 1] === UNDERSCORE)) {
        this.emit('malformed', b.toString('utf8', cs, ce));
      }
    });
  }

  private onReady(): void {
    this.readerRestarts = 0;
    if (this.everSubscribed) {
      this.reconnects++;
      this.log.warn(
        { event: 'redis-resubscribed', reconnects: this.reconnects },
        'redis subscriber reconnected and resubscribed',
      );
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
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'stop' } satisfies SourceCommand);
    // Bounded: a reader stuck in a native call must not hold up the shutdown.
    const timer = setTimeout(() => void worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }
}
