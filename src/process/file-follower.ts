import { closeSync, fstatSync, openSync, readSync, renameSync, statSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';

/** Where a reader stands in a file: its identity (device:inode) and the byte offset after the last whole line read. */
export interface FilePosition {
  file: string;
  offset: number;
}

export interface FileFollowerOptions {
  path: string;
  /** Each whole line, in order, with the position just after it. */
  onLine(line: string, position: FilePosition): void;
  /**
   * Poll period. Writes are noticed through inotify on the file's folder; the poll is the safety
   * net (default 1000 ms), or the only way (default 25 ms) where the folder cannot be watched.
   */
  pollMs?: number;
  /** Rotate when the file reaches this size (0: never): rename to `<path>.1`, then rotate(). */
  maxBytes?: number;
  /** After the rename: make the writer reopen its path (SIGHUP for turnserver). */
  reopen?(): void;
  /** Something worth a log line (position lost, rotation). */
  onNotice?(event: string, detail: Record<string, unknown>): void;
}

const CHUNK = 64 * 1024;
const SAFETY_POLL_MS = 1000;
const FALLBACK_POLL_MS = 25;

function identity(st: { dev: number; ino: number }): string {
  return `${st.dev}:${st.ino}`;
}

function statOrNull(p: string): { dev: number; ino: number; size: number } | null {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

/**
 * Follows a log file by byte offset: every whole line once and in order, across rotation (by
 * size, its own: rename to `.1` + reopen; or anyone's: a new file at the path). The old file is
 * read to its end before the new one is started. Reads are synchronous and small, so a line and
 * the position after it are handed over together and drain() can finish a file at once.
 */
export class FileFollower {
  private fd: number | null = null;
  private id = '';
  private offset = 0;
  private rest: Buffer = Buffer.alloc(0);
  private timer: NodeJS.Timeout | null = null;
  private watcher: FSWatcher | null = null;
  private pollQueued = false;
  private rotating = false;
  private readonly buf = Buffer.allocUnsafe(CHUNK);

  constructor(private readonly opts: FileFollowerOptions) {}

  get running(): boolean {
    return this.timer !== null;
  }

  /** The position after the last line handed over. */
  get position(): FilePosition {
    return { file: this.id, offset: this.offset - this.rest.length };
  }

  /**
   * Start at `from` (in the file or in its `.1` predecessor, found by identity); without one (or
   * when it names neither file) at the current end of the file, or at its start once it appears.
   */
  start(from: FilePosition | null = null, fromStartWhenLost = false): void {
    if (this.timer) return;
    const old = `${this.opts.path}.1`;
    const match = from && [this.opts.path, old].find((p) => statOrNull(p) && identity(statOrNull(p)!) === from.file);
    if (match && from) {
      this.open(match, from.offset);
    } else {
      if (from) this.opts.onNotice?.('log-position-lost', { file: from.file, offset: from.offset });
      const st = statOrNull(this.opts.path);
      if (st) this.open(this.opts.path, fromStartWhenLost && from ? 0 : st.size);
    }
    this.watcher = this.watchFolder();
    this.setPoll(this.watcher ? SAFETY_POLL_MS : FALLBACK_POLL_MS);
  }

  stop(): void {
    this.unwatch();
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.rest = Buffer.alloc(0);
  }

  private setPoll(defaultMs: number): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.poll(), this.opts.pollMs ?? defaultMs);
  }

  /** A read on every change of the file (or of its `.1`, or a new file at the path); null when the folder cannot be watched. */
  private watchFolder(): FSWatcher | null {
    const name = path.basename(this.opts.path);
    try {
      const watcher = watch(path.dirname(this.opts.path), { persistent: false }, (_event, file) => {
        if (file === null || file === name || file === `${name}.1`) this.queuePoll();
      });
      watcher.on('error', (err) => {
        this.opts.onNotice?.('log-watch-failed', { err: err.message });
        this.unwatch();
        if (this.timer) this.setPoll(FALLBACK_POLL_MS);
      });
      return watcher;
    } catch (err) {
      this.opts.onNotice?.('log-watch-failed', { err: (err as Error).message });
      return null;
    }
  }

  private unwatch(): void {
    this.watcher?.close();
    this.watcher = null;
  }

  // A burst of writes is read in one go, once this turn of the event loop is over.
  private queuePoll(): void {
    if (this.pollQueued) return;
    this.pollQueued = true;
    setImmediate(() => {
      this.pollQueued = false;
      if (this.timer) this.poll();
    });
  }

  /** Read everything written so far, now (the writer exited: its last lines come before its exit). */
  drain(): void {
    if (this.timer) this.poll();
  }

  private open(p: string, offset: number): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = openSync(p, 'r');
    this.id = identity(fstatSync(this.fd));
    this.offset = offset;
    this.rest = Buffer.alloc(0);
  }

  private poll(): void {
    try {
      this.pollOnce();
    } catch (err) {
      this.opts.onNotice?.('log-read-failed', { err: (err as Error).message });
    }
  }

  private pollOnce(): void {
    if (this.fd === null) {
      if (statOrNull(this.opts.path)) this.open(this.opts.path, 0);
      else return;
    }
    this.readToEnd();
    const atPath = statOrNull(this.opts.path);
    if (atPath && identity(atPath) !== this.id) {
      // The writer reopened its path: what it wrote to the old file was all read above.
      this.readToEnd();
      this.flushPartial();
      this.open(this.opts.path, 0);
      this.rotating = false;
      this.readToEnd();
    } else if (atPath && atPath.size < this.offset) {
      this.opts.onNotice?.('log-truncated', { size: atPath.size, offset: this.offset });
      this.offset = 0;
      this.rest = Buffer.alloc(0);
    } else if (!this.rotating && this.opts.maxBytes && this.offset >= this.opts.maxBytes && atPath) {
      this.rotate();
    }
  }

  private rotate(): void {
    this.rotating = true;
    renameSync(this.opts.path, `${this.opts.path}.1`);
    this.opts.onNotice?.('log-rotated', { size: this.offset });
    this.opts.reopen?.();
  }

  private readToEnd(): void {
    if (this.fd === null) return;
    for (;;) {
      const n = readSync(this.fd, this.buf, 0, CHUNK, this.offset);
      if (n <= 0) return;
      this.offset += n;
      this.split(this.buf.subarray(0, n));
    }
  }

  private split(chunk: Buffer): void {
    let data = this.rest.length > 0 ? Buffer.concat([this.rest, chunk]) : chunk;
    const base = this.offset - data.length;
    let start = 0;
    let nl: number;
    while ((nl = data.indexOf(10, start)) >= 0) {
      const end = nl > start && data[nl - 1] === 13 ? nl - 1 : nl;
      this.opts.onLine(data.toString('utf8', start, end), { file: this.id, offset: base + nl + 1 });
      start = nl + 1;
    }
    data = data.subarray(start);
    this.rest = Buffer.from(data);
  }

  /** A last line without its newline in a file that will not grow again. */
  private flushPartial(): void {
    if (this.rest.length === 0) return;
    const line = this.rest.toString('utf8');
    this.rest = Buffer.alloc(0);
    this.opts.onLine(line, { file: this.id, offset: this.offset });
  }
}
