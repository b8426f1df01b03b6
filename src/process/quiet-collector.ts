import type { Session } from 'node:inspector';

export interface QuietCollectorOptions {
  /** Activity (events, messages) after which a quiet spell is worth a collection. */
  armAfter: number;
  /** How long nothing must happen before the heap is collected. */
  quietMs: number;
}

/**
 * V8's low-memory collection of this thread's heap: full, compacting, the young generation shrunk
 * and the freed pages given back. The in-process inspector's HeapProfiler.collectGarbage is that
 * (Isolate::LowMemoryNotification); unlike --expose-gc's gc(), which leaves the old generation's
 * emptied pages and a full-size young generation mapped. Resolves false where node has no inspector.
 */
async function lowMemoryCollection(): Promise<boolean> {
  let session: Session;
  try {
    session = new (await import('node:inspector')).Session();
    session.connect();
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    session.post('HeapProfiler.collectGarbage', (err) => {
      // Not from inside the session's own callback: disconnecting there hangs the thread.
      setImmediate(() => session.disconnect());
      resolve(err === null);
    });
  });
}

/**
 * A full garbage collection when a burst of work is over. Objects that lived through a burst
 * (records of allocations since closed, the hash tables that held them) sit in V8's old
 * generation until the next major GC, which V8 starts only when that generation reaches a limit
 * several times what the last one left alive; and a thread that goes quiet after a burst
 * allocates next to nothing, so its heap stays at its peak indefinitely (V8's memory reducer only
 * follows a major GC). After `armAfter` units of activity the collector watches for `quietMs`
 * without any, then collects. The activity is the measure: how much a burst left is not known
 * before a collection (the heap's growth misses what died, such as the records of allocations
 * that closed). An idle thread runs no timer; a busy one pays an increment and a comparison per
 * unit of activity, and a stream that never pauses for `quietMs` is left to V8.
 */
export class QuietCollector {
  private count = 0;
  private seen = 0;
  private armedAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private collecting = false;
  private stopped = false;
  /** Collections done (tests, benchmarks). */
  collections = 0;

  constructor(private readonly opts: QuietCollectorOptions) {}

  /** One unit of activity (the hot path). */
  note(): void {
    if (++this.count === this.opts.armAfter && this.timer === null && !this.stopped) this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(): void {
    this.seen = this.count;
    this.armedAt = performance.now();
    this.timer = setTimeout(this.onTimer, this.opts.quietMs);
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    // Late (the thread was blocked, or stopped): events may be waiting unread, so this is no
    // quiet spell. Busy: activity since the last look.
    if (this.count !== this.seen || performance.now() - this.armedAt > this.opts.quietMs * 1.5) {
      this.arm();
      return;
    }
    this.count = 0;
    if (this.collecting) return;
    this.collecting = true;
    void lowMemoryCollection().then((done) => {
      this.collecting = false;
      if (done) this.collections++;
    });
  };
}
