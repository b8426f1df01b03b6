// Worker thread of RedisSource: runs the ioredis subscriber and hands the messages to the main
// thread as raw bytes in batches. Decoding coturn's messages takes about as long as parsing the
// Redis protocol, so a busy host's event stream gets a core for each; the main thread's HTTP and
// timers also stay responsive during an event burst.
import { parentPort, workerData } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { QuietCollector } from '../../../process/quiet-collector.js';
import {
  BATCH_BYTES,
  CONSUMED,
  entryBytes,
  MAX_BATCHES_IN_FLIGHT,
  PAUSED,
  writeEntry,
  type ReaderInit,
  type ReaderMessage,
  type SourceCommand,
} from './redis-reader-protocol.js';

const port = parentPort!;
const init = workerData as ReaderInit;
const post = (m: ReaderMessage, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

const client = new Redis({
  host: init.host,
  port: init.port,
  password: init.password ?? undefined,
  tls: init.tls ? {} : undefined,
  maxRetriesPerRequest: null,
  enableOfflineQueue: true,
  retryStrategy: (times) => Math.min(100 * 2 ** Math.min(times, 6), 3000),
});

// The batch being filled (entries as redis-reader-protocol.ts lays them out).
let batch = Buffer.allocUnsafeSlow(BATCH_BYTES);
let used = 0;
let count = 0;
let flushQueued = false;
let posted = 0;
let stopping = false;
const flow = new Int32Array(init.flow);
// Batches handed over and not yet consumed (both counters wrap alike).
const inFlight = () => (posted - Atomics.load(flow, CONSUMED)) | 0;
// The paused flag lives only in the shared slot, where the main thread reads it too.
const paused = () => Atomics.load(flow, PAUSED) === 1;
const setPaused = (on: boolean) => Atomics.store(flow, PAUSED, on ? 1 : 0);
// This thread's own heap: what a burst of messages left (socket chunks, parser state) goes when
// the stream is quiet again; its live set is a few MB.
const collector = new QuietCollector({ armAfter: 20_000, quietMs: 1_000 });

// Backpressure: stop reading the socket while the main thread is behind; Redis keeps the backlog.
// The flag is set before the count is read again, and main adds to the count before it reads the
// flag: one of the two sees the other, so a consume that lands meanwhile is never missed.
function pause(): void {
  setPaused(true);
  client.stream?.pause();
  if (inFlight() < MAX_BATCHES_IN_FLIGHT) resume();
}

function resume(): void {
  if (!paused()) return;
  setPaused(false);
  client.stream?.resume();
}

function flush(): void {
  flushQueued = false;
  if (count === 0) return;
  // Hand over a copy of exactly what was written and keep the batch: a trickle of events (one per
  // flush) must not allocate a whole batch each time, which the main thread frees only at its next GC.
  const out = new Uint8Array(used);
  out.set(batch.subarray(0, used));
  post({ type: 'batch', buffer: out.buffer, count }, [out.buffer]);
  if (batch.length > BATCH_BYTES) batch = Buffer.allocUnsafeSlow(BATCH_BYTES); // after an oversized message
  used = 0;
  count = 0;
  posted = (posted + 1) | 0;
  if (!paused() && inFlight() >= MAX_BATCHES_IN_FLIGHT) pause();
}

client.on('pmessageBuffer', (_pattern: string, channel: Buffer, message: Buffer) => {
  const need = entryBytes(channel, message);
  if (used + need > batch.length) {
    flush();
    if (need > batch.length) batch = Buffer.allocUnsafeSlow(need);
  }
  used = writeEntry(batch, used, channel, message);
  count++;
  collector.note();
  // Hand over what this socket read brought as soon as it is parsed.
  if (!flushQueued) {
    flushQueued = true;
    setImmediate(flush);
  }
});

// Until the first subscription holds, connection trouble is 'unavailable' (said once); after it,
// every 'ready' is a reconnection, and ioredis has resubscribed by itself.
let subscribed = false;
let saidUnavailable = false;
client.on('ready', () => {
  if (subscribed) post({ type: 'ready' });
});
client.on('close', () => {
  flush();
  // The next connection's socket starts flowing.
  setPaused(false);
  post({ type: 'close' });
});
client.on('error', (err: Error) => {
  if (!subscribed && !saidUnavailable) {
    saidUnavailable = true;
    post({ type: 'unavailable', message: err.message });
  } else {
    post({ type: 'error', message: err.message });
  }
});

port.on('message', (cmd: SourceCommand) => {
  if (cmd.type === 'resume') {
    if (inFlight() < MAX_BATCHES_IN_FLIGHT) resume(); // resume() does nothing unless paused
  } else if (cmd.type === 'stop') {
    stopping = true;
    collector.stop();
    client.disconnect();
    port.close();
  }
});

// Queued until a connection is up, however many attempts that takes. A refusal (an ACL, say)
// ends this thread; RedisSource counts that as a loss and starts a new reader after a pause.
try {
  await client.psubscribe('turn/*');
  subscribed = true;
  post({ type: 'subscribed' });
} catch (err) {
  if (!stopping) throw err;
}
