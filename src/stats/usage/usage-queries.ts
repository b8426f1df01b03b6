import { Worker } from 'node:worker_threads';
import type { Logger } from '../../log/logger.js';
import { workerEntry } from '../../util/worker-entry.js';
import type { FromThread, PageRequest, ToThread } from './query-protocol.js';
import type { Keyset } from './usage-sql.js';

const threadEntry = workerEntry(import.meta.url, 'query-thread');

/** Where a page goes: head first (before any text), then text pieces; `write` resolves when the receiver can take more. */
export interface PageSink {
  head(rows: number, next: Keyset | null): void;
  write(text: string): Promise<void>;
}

interface Pending {
  sink: PageSink;
  resolve: () => void;
  reject: (err: Error) => void;
  /** Writes in progress: text is handed on in order. */
  chain: Promise<void>;
}

export type QueriesStatus = 'stopped' | 'starting' | 'ready' | 'died';

/**
 * Usage pages read on a worker thread with its own read-only connection (WAL lets it read while
 * the pipeline writes): the monitor's event loop only passes text on. A thread that dies fails
 * its queries and is started again for the next one.
 */
export class UsageQueries {
  private worker: Worker | null = null;
  private starting: Promise<void> | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  status: QueriesStatus = 'stopped';
  private running = false;

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {}

  start(): Promise<void> {
    this.running = true;
    return this.spawn();
  }

  private spawn(): Promise<void> {
    this.starting ??= new Promise<void>((resolve, reject) => {
      this.status = 'starting';
      const worker = new Worker(threadEntry.code, { eval: threadEntry.eval, workerData: { file: this.file } });
      this.worker = worker;
      worker.on('message', (m: FromThread) => {
        if (m.type === 'ready') {
          this.status = 'ready';
          resolve();
        } else if (m.type === 'failed') reject(new Error(`cannot read the usage database ${this.file}: ${m.message}`));
        else this.onMessage(worker, m);
      });
      worker.on('error', (err) =>
        this.log.error({ event: 'query-thread-failed', err: err.message }, 'usage query thread failed'),
      );
      worker.on('exit', () => {
        if (this.worker !== worker) return;
        this.worker = null;
        this.starting = null;
        this.status = this.running ? 'died' : 'stopped';
        reject(new Error('the usage query thread exited'));
        for (const p of this.pending.values()) p.reject(new Error('the usage query thread exited'));
        this.pending.clear();
      });
    });
    return this.starting;
  }

  private onMessage(worker: Worker, m: Exclude<FromThread, { type: 'ready' | 'failed' }>): void {
    const p = this.pending.get(m.id);
    if (!p) return;
    const send = (msg: ToThread) => worker.postMessage(msg);
    if (m.type === 'head') p.sink.head(m.rows, m.next);
    else if (m.type === 'chunk') {
      p.chain = p.chain.then(() => p.sink.write(m.text)).then(() => send({ type: 'ack', id: m.id }));
      p.chain.catch(() => undefined);
    } else {
      this.pending.delete(m.id);
      if (m.type === 'end') p.chain.then(p.resolve, p.reject);
      else p.reject(new Error(m.message));
    }
  }

  /** Read one page into `sink`; `signal` aborted (the client went away) stops the read. */
  async page(request: PageRequest, sink: PageSink, signal: AbortSignal): Promise<void> {
    if (!this.running) throw new Error('usage queries are stopped');
    await this.spawn();
    const worker = this.worker!;
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) =>
      this.pending.set(id, { sink, resolve, reject, chain: Promise.resolve() }),
    );
    const cancel = () => {
      const p = this.pending.get(id);
      if (!p) return;
      this.pending.delete(id);
      worker.postMessage({ type: 'cancel', id } satisfies ToThread);
      p.resolve();
    };
    signal.addEventListener('abort', cancel, { once: true });
    worker.postMessage({ type: 'query', id, request } satisfies ToThread);
    try {
      await done;
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }

  /** Idempotent. */
  async stop(): Promise<void> {
    this.running = false;
    const worker = this.worker;
    if (!worker) return;
    await worker.terminate();
    this.status = 'stopped';
  }

  health(): { status: QueriesStatus; inFlight: number } {
    return { status: this.status, inFlight: this.pending.size };
  }
}
