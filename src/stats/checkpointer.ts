import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

// The worker's whole program: its own connection to usage.db, a PASSIVE checkpoint per request.
// Plain CommonJS handed over as text, so it runs the same from dist/ and under tsx (tests).
const PROGRAM = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.module);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
parentPort.on('message', (m) => {
  if (m === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)')[0];
    parentPort.postMessage({ ok: true, frames: r.log, copied: r.checkpointed });
  } catch (err) {
    parentPort.postMessage({ ok: false, err: err.message });
  }
});`;

const betterSqlite3 = createRequire(import.meta.url).resolve('better-sqlite3');

export interface CheckpointResult {
  /** Frames in the WAL, and how many of them are in the database file now. */
  frames: number;
  copied: number;
}

/**
 * WAL checkpoints of usage.db on a worker thread. A checkpoint copies the WAL into the database
 * file and fsyncs both: tens of milliseconds on an ordinary disk, however few pages it copies.
 * SQLite runs one on the committing connection whenever the WAL reaches 1000 pages, which during
 * a prune would be every few batches, on the event loop. Retention turns that off around its own
 * steps and asks this worker instead, on its own connection (PASSIVE: it takes no lock a writer
 * waits for, so the pipeline's writes go on meanwhile). Started for a pass, closed after it.
 */
export class Checkpointer {
  private readonly worker: Worker;
  private pending: { resolve: (r: CheckpointResult) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;
  private readonly exited: Promise<void>;

  constructor(file: string) {
    this.worker = new Worker(PROGRAM, {
      eval: true,
      workerData: { module: betterSqlite3, file },
      resourceLimits: { maxOldGenerationSizeMb: 16 },
    });
    this.worker.unref();
    this.worker.on('message', (m: { ok: true; frames: number; copied: number } | { ok: false; err: string }) => {
      const p = this.pending;
      this.pending = null;
      if (m.ok) p?.resolve({ frames: m.frames, copied: m.copied });
      else p?.reject(new Error(m.err));
    });
    this.worker.on('error', (err) => this.fail(err));
    this.exited = new Promise((resolve) =>
      this.worker.once('exit', () => {
        this.fail(new Error('checkpoint worker exited'));
        resolve();
      }),
    );
  }

  /** The thread failed to start, crashed or ended: no checkpoint can run on it any more. */
  get broken(): boolean {
    return this.failure !== null;
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.pending?.reject(err);
    this.pending = null;
  }

  /** One PASSIVE checkpoint; one at a time. */
  checkpoint(): Promise<CheckpointResult> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error('a checkpoint is already running'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage('check');
    });
  }

  /** Close its connection and end the thread (terminated if it does not end within a second). */
  async close(): Promise<void> {
    if (!this.failure) this.worker.postMessage('close');
    const timer = setTimeout(() => void this.worker.terminate(), 1000);
    await this.exited;
    clearTimeout(timer);
  }
}
