import path from 'node:path';
import Database from 'better-sqlite3';
import type { Harness, Tracked } from '../test/harness/harness.js';
import { spawnLikeMonitor } from '../test/harness/monitor.js';
import { startRedis, type Service } from '../test/harness/services.js';
import { newSecret } from '../test/harness/webhook-receiver.js';
import { killPid } from '../src/process/pids.js';
import { CHECKPOINT_EVERY_MS } from '../src/webhooks/delivery-store.js';
import { DEFAULT_POLL_MS } from '../src/webhooks/webhooks.js';
import { allocationEvents } from './events.js';
import {
  alternate,
  median,
  percentile,
  quiesce,
  rateFigures,
  sleep,
  type Benchmark,
  type Side,
  type Timed,
} from './lib.js';
import { RespPublisher } from './resp-publisher.js';

// webhooks: the stats ingest load with webhooks on (triggers in usage.db, the delivery thread
// sending every event to a local receiver) against the same load with webhooks off; how fast a
// backlog is delivered; how soon after an allocation closes its allocation.ended arrives.

const ALLOCATIONS = 1_000;
const EVENTS = ALLOCATIONS * 100; // coturn events per backlog: 2,000 webhook events
const PREFILL = 10_000; // allocations stored before delivery starts: 20,000 webhook events
const LAG_ALLOCATIONS = 500;
const worker = path.join(import.meta.dirname, 'workers', 'ingest-webhooks.ts');
const secret = newSecret();

/**
 * The receiver: a bare node:http server answering 200 at once (workers/webhook-receiver.ts), in
 * a process of its own at nice 19: it stands for the application's server, which is not on the
 * TURN host, so it takes CPU only that the monitor's side leaves (on a 2-core VM it would
 * otherwise compete with ingest for the second core, a cost no real host pays).
 */
class Receiver {
  received = 0;
  first = 0;
  last = 0;
  readonly ended = new Map<string, number>();
  url = '';
  private t: Tracked | null = null;
  private buffer = '';
  private waiter: (() => void) | null = null;

  async start(h: Harness): Promise<void> {
    const script = path.join(import.meta.dirname, 'workers', 'webhook-receiver.ts');
    this.t = h.spawn('receiver', 'nice', ['-n', '19', process.execPath, '--import', 'tsx', script], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.t.child.stdout!.on('data', (d: string) => this.onData(d));
    await new Promise<void>((resolve) => (this.waiter = resolve));
  }

  private onData(d: string): void {
    this.buffer += d;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const [kind, a, b, c] = this.buffer.slice(0, nl).split(' ');
      this.buffer = this.buffer.slice(nl + 1);
      if (kind === 'listening') this.url = `http://127.0.0.1:${a}/hook`;
      else if (kind === 'e') this.ended.set(a, Number(b));
      else if (kind !== 'n') continue;
      else [this.received, this.first, this.last] = [Number(a), Number(b), Number(c)];
      const w = this.waiter;
      this.waiter = null;
      w?.();
    }
  }

  private say(line: string): Promise<void> {
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.t!.child.stdin!.write(`${line}\n`);
    });
  }

  async reset(): Promise<void> {
    this.t!.child.stdin!.write('reset\n');
    this.ended.clear();
    await this.say('report');
  }

  timeEnded(): void {
    this.t!.child.stdin!.write('time\n');
  }

  async until(count: number, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.say('report');
      if (this.received >= count) return;
      if (Date.now() > deadline)
        throw new Error(`receiver: ${this.received} of ${count} events within ${timeoutMs} ms`);
      await sleep(10);
    }
  }
}

const receiver = new Receiver();
const sides = {} as Record<
  Side,
  { redis: Service; pub: RespPublisher; worker: Tracked | null; drains: number; db: string }
>;
let extraRedis: Service;
let extraPub: RespPublisher;
let backlogs = 0;
/** Webhook events the receiver should have once the 'ours' (webhooks on) worker delivered everything. */
let expectedEvents = 0;

function waitLines(t: Tracked, prefix: string, count = 1, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    while (
      t
        .output()
        .split('\n')
        .filter((l) => l.startsWith(prefix)).length < count
    ) {
      if (Date.now() > deadline) throw new Error(`${t.name}: no "${prefix}" within ${timeoutMs} ms`);
      await sleep(2);
    }
  })();
}

function spawnWorker(h: Harness, name: string, port: number, db: string, on: boolean, extra: string[] = []): Tracked {
  const args = [
    worker,
    String(port),
    path.join(h.dir, db),
    String(EVENTS),
    on ? receiver.url : 'off',
    secret,
    ...extra,
  ];
  return spawnLikeMonitor(h, name, ['--import', 'tsx', ...args]);
}

async function publishBacklog(kind: Side): Promise<void> {
  const side = sides[kind];
  side.drains++;
  const offset = ++backlogs * ALLOCATIONS;
  process.kill(side.worker!.pid, 'SIGSTOP');
  const lives = Array.from({ length: ALLOCATIONS }, (_, i) => allocationEvents(offset + i));
  await side.pub.publish(
    (function* () {
      for (let step = 0; step < 100; step++) for (const life of lives) yield life[step];
    })(),
  );
  if (kind === 'ours') expectedEvents += 2 * ALLOCATIONS;
}

/**
 * Until the 'ours' worker's outbox is settled: every delivery received and written as such (no
 * queue row, no delivery row left), then the delivery thread's checkpoint of those writes (owed
 * for at most CHECKPOINT_EVERY_MS, taken at its next look). Otherwise the previous backlog's
 * bookkeeping would run in the next timed drain, the process being stopped while it is published.
 */
async function settled(timeoutMs = 30_000): Promise<void> {
  await receiver.until(expectedEvents);
  const db = new Database(sides.ours.db, { readonly: true, fileMustExist: true });
  try {
    const left = db
      .prepare(`SELECT (SELECT count(*) FROM webhook_queue) + (SELECT count(*) FROM webhook_deliveries)`)
      .pluck();
    const deadline = Date.now() + timeoutMs;
    while ((left.get() as number) > 0) {
      if (Date.now() > deadline) throw new Error(`webhooks: the outbox not settled within ${timeoutMs} ms`);
      await sleep(5);
    }
  } finally {
    db.close();
  }
  await sleep(CHECKPOINT_EVERY_MS + DEFAULT_POLL_MS);
}

/**
 * Drain a side's backlog: timed until every event is committed (what stats_ingest times). With
 * webhooks on, the deliveries (which start within 100 ms of each commit) are then awaited,
 * untimed, with their bookkeeping (settled()), so none of it falls into the next drain.
 */
async function drain(kind: Side): Promise<Timed> {
  const side = sides[kind];
  const t0 = performance.now();
  process.kill(side.worker!.pid, 'SIGCONT');
  await waitLines(side.worker!, 'done', side.drains);
  const wall = (performance.now() - t0) / 1000;
  if (kind === 'ours') await settled();
  return { wall };
}

async function freshWorkers(h: Harness, round: number): Promise<void> {
  await receiver.reset();
  expectedEvents = 0;
  for (const kind of ['ours', 'bare'] as const) {
    const side = sides[kind];
    if (side.worker) await killPid(side.worker.pid);
    const file = `${kind}-${round}.db`;
    side.db = path.join(h.dir, file);
    side.worker = spawnWorker(h, `ingest-${kind}`, side.redis.port, file, kind === 'ours');
    side.drains = 0;
    await waitLines(side.worker, 'ready');
    await publishBacklog(kind);
    await drain(kind);
  }
}

/** A backlog of PREFILL closed allocations in the outbox; events/s from the receiver's first to its last. */
async function throughput(h: Harness, round: number): Promise<number> {
  await receiver.reset();
  const t = spawnWorker(h, 'prefill', extraRedis.port, `prefill-${round}.db`, true, ['--prefill', String(PREFILL)]);
  await receiver.until(2 * PREFILL);
  await killPid(t.pid);
  return (2 * PREFILL - 1) / ((receiver.last - receiver.first) / 1000);
}

/** Paced 10k events/s: from an allocation's last event (its totals) published to its allocation.ended received. */
async function lag(h: Harness, round: number): Promise<number> {
  await receiver.reset();
  receiver.timeEnded();
  const t = spawnWorker(h, 'lag', extraRedis.port, `lag-${round}.db`, true);
  await waitLines(t, 'ready');
  const closed = new Map<string, number>();
  const start = performance.now();
  for (let i = 0; i < LAG_ALLOCATIONS; i++) {
    const events = allocationEvents(200_000 + i);
    await extraPub.publish(events);
    closed.set(/allocation\/(\d+)\//.exec(events[0][0])![1], Date.now());
    const wait = start + ((i + 1) * 100 * 1000) / 10_000 - performance.now();
    if (wait > 0) await sleep(wait);
  }
  const deadline = Date.now() + 30_000;
  while (receiver.ended.size < LAG_ALLOCATIONS && Date.now() < deadline) {
    await receiver.until(0);
    await sleep(10);
  }
  await killPid(t.pid);
  const lags = [...closed].map(([id, at]) => (receiver.ended.get(id) ?? Infinity) - at);
  return percentile(lags, 99);
}

const WARMUP = 1;
const PAIRS = 12;

/**
 * `ingest_ratio`: events/s into committed SQLite with webhooks on (every allocation's two events
 * written by the triggers, then delivered: held back while the ingest saturates the event loop,
 * a second at most) over webhooks off, ABBA pairs of drains as in stats_ingest, fresh workers
 * every round, each side's rate from its summed time. `ingest_pair_ratio`: the median of the
 * pairs' own ratios (two drains a fraction of a second apart: a swing of the VM's speed between
 * pairs, which moved whole rounds by ±20 % here, falls on both). `events_per_s`: a backlog of
 * 20,000 events delivered to one endpoint. `ended_p99_ms`: allocation closed → its
 * allocation.ended at the receiver, paced at 10k coturn events/s.
 */
export const webhooksBench: Benchmark = {
  name: 'webhooks',
  goals: {
    ingest_ratio: '≥ 0.95',
    ingest_pair_ratio: '≥ 0.95',
    events_per_s: '-',
    ended_p99_ms: '≤ 500',
    ours_ev_s: '-',
    bare_ev_s: '-',
  },
  warmup: WARMUP,
  rounds: 5,
  async setup(h) {
    await receiver.start(h);
    for (const kind of ['ours', 'bare'] as const) {
      const redis = await startRedis(h);
      const pub = new RespPublisher(redis.port);
      h.onCleanup(async () => pub.close());
      sides[kind] = { redis, pub, worker: null, drains: 0, db: '' };
    }
    extraRedis = await startRedis(h);
    extraPub = new RespPublisher(extraRedis.port);
    h.onCleanup(async () => extraPub.close());
  },
  async round(h, round) {
    await freshWorkers(h, round);
    const pairs = await alternate(PAIRS, drain, async (order) => {
      for (const kind of order) await publishBacklog(kind);
      await quiesce();
    });
    const { ratio, ours_ev_s, bare_ev_s } = rateFigures('ev', EVENTS, pairs);
    const ingest_pair_ratio = median(pairs.map((p) => p.bare.wall / p.ours.wall));
    const figures: Record<string, number> = { ingest_ratio: ratio, ingest_pair_ratio, ours_ev_s, bare_ev_s };
    if (round >= WARMUP && round < WARMUP + 3) {
      for (const kind of ['ours', 'bare'] as const) await killPid(sides[kind].worker!.pid);
      for (const kind of ['ours', 'bare'] as const) sides[kind].worker = null;
      figures.events_per_s = await throughput(h, round);
      figures.ended_p99_ms = await lag(h, round);
    }
    return figures;
  },
};
