import path from 'node:path';
import type { Harness, Tracked } from '../test/harness/harness.js';
import { spawnLikeMonitor } from '../test/harness/monitor.js';
import { startRedis, type Service } from '../test/harness/services.js';
import { allocationEvents } from './events.js';
import { alternate, percentile, quiesce, rateFigures, sleep, type Benchmark, type Side, type Timed } from './lib.js';
import { killPid } from '../src/process/pids.js';
import { CpuWindow } from './cpu.js';
import { RespPublisher } from './resp-publisher.js';

const ALLOCATIONS = 1_000;
const EVENTS = ALLOCATIONS * 100; // 100,000 per backlog
const worker = (name: string) => path.join(import.meta.dirname, 'workers', name);

// Each side has its Redis (PUBLISH reaches every subscriber of a server) and a worker per round.
const sides = {} as Record<Side, { redis: Service; pub: RespPublisher; worker: Tracked | null; drains: number }>;
let lagRedis: Service;
let lagPub: RespPublisher;

/** Resolves once `t` has printed `count` lines starting with `prefix`. */
function waitLines(t: Tracked, prefix: string, count = 1, timeoutMs = 120_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${t.name}: no "${prefix}" within ${timeoutMs} ms`)), timeoutMs);
    const check = () => {
      const seen = t
        .output()
        .split('\n')
        .filter((l) => l.startsWith(prefix)).length;
      if (seen >= count) {
        clearTimeout(timer);
        t.child.stdout?.off('data', check);
        resolve();
      }
    };
    t.child.stdout?.on('data', check);
    check();
  });
}

/** A side's Redis and publisher, kept for the whole run. */
async function startSide(h: Harness, kind: Side): Promise<void> {
  const redis = await startRedis(h);
  const pub = new RespPublisher(redis.port);
  h.onCleanup(async () => pub.close());
  sides[kind] = { redis, pub, worker: null, drains: 0 };
}

/**
 * A fresh subscriber for a side (ours: on a fresh database), warmed by one untimed drain. Each
 * round starts from the same state: over a run, ours slowed as its database grew and the bare
 * worker sped up as it aged, so a long-lived pair drifted apart within a run.
 */
async function freshWorker(h: Harness, kind: Side, round: number): Promise<void> {
  const side = sides[kind];
  if (side.worker) await killPid(side.worker.pid);
  const args =
    kind === 'ours'
      ? [worker('ingest-ours.ts'), String(side.redis.port), path.join(h.dir, `ingest-${round}.db`), String(EVENTS)]
      : [worker('ingest-bare.ts'), String(side.redis.port), String(EVENTS)];
  // Both run with the monitor's own node flags (its launcher's shebang): one runtime.
  side.worker = spawnLikeMonitor(h, `ingest-${kind}`, ['--import', 'tsx', ...args]);
  side.drains = 0;
  await waitLines(side.worker, 'ready');
  await publishBacklog(kind);
  await drain(kind);
}

function workerOf(kind: Side): Tracked {
  const t = sides[kind].worker;
  if (!t) throw new Error(`no ${kind} worker`);
  // A worker that died says why (its output), not an ENOENT on its /proc entry.
  if (t.child.exitCode !== null || t.child.signalCode !== null)
    throw new Error(`${t.name} exited (${t.child.exitCode ?? t.child.signalCode}): ${t.output().slice(-2000)}`);
  return t;
}

let backlogs = 0;

/** Freeze a side's subscriber and publish a backlog of new allocations to it. */
async function publishBacklog(kind: Side): Promise<void> {
  const side = sides[kind];
  side.drains++;
  const offset = ++backlogs * ALLOCATIONS;
  process.kill(workerOf(kind).pid, 'SIGSTOP');
  // Interleaved as on a busy server: step k of every allocation, then step k + 1.
  const lives = Array.from({ length: ALLOCATIONS }, (_, i) => allocationEvents(offset + i));
  await side.pub.publish(
    (function* () {
      for (let step = 0; step < 100; step++) for (const life of lives) yield life[step];
    })(),
  );
}

/** Both backlogs of a pair are published first, so its two drains follow each other at once. */
async function publishBoth(order: readonly Side[]): Promise<void> {
  for (const kind of order) await publishBacklog(kind);
  // Publishing left garbage in this process: collect it now, not while the drains are timed.
  await quiesce();
}

/** Let a side's subscriber drain its backlog; wall and CPU seconds (/proc, every thread). */
async function drain(kind: Side): Promise<Timed> {
  const side = sides[kind];
  const t = workerOf(kind);
  const window = new CpuWindow([t.pid]);
  process.kill(t.pid, 'SIGCONT');
  await waitLines(t, 'done', side.drains);
  const { wallSec, cpuSec } = window.stop();
  return { wall: wallSec, cpu: cpuSec[0] };
}

/** Paced 10k events/s; lag from each allocation's `new` PUBLISH to its first commit. */
async function lag(h: Harness, round: number): Promise<number> {
  const allocations = 500;
  const t = spawnLikeMonitor(h, 'ingest-lag', [
    '--import',
    'tsx',
    worker('ingest-ours.ts'),
    String(lagRedis.port),
    path.join(h.dir, `lag-${round}.db`),
    String(allocations * 100),
    '--commits',
  ]);
  await waitLines(t, 'ready');
  const published = new Map<string, number>();
  const start = performance.now();
  for (let i = 0; i < allocations; i++) {
    const events = allocationEvents(100_000 + i);
    published.set(/allocation\/(\d+)\//.exec(events[0][0])![1], Date.now());
    await lagPub.publish(events);
    const due = start + ((i + 1) * 100 * 1000) / 10_000; // 100 events per 10 ms
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await waitLines(t, 'done');
  const lags: number[] = [];
  for (const line of t.output().split('\n')) {
    const m = /^c (\d+) (\d+)$/.exec(line);
    const sent = m && published.get(m[1]);
    if (m && sent) lags.push(Number(m[2]) - sent);
  }
  await killPid(t.pid);
  return percentile(lags, 99);
}

const WARMUP = 1;
const LAG_ROUNDS = 3;
const PAIRS = 12; // per round

/**
 * One round = PAIRS adjacent pairs of drains (ours, bare), the order swapped every pair (ABBA),
 * each side's rate from its summed time: a drift of the machine's speed falls on both sides
 * alike. Both backlogs of a pair are published before either drains, so its two drains follow
 * each other with no publishing between them. Drains are short and many: this VM's speed moves
 * within seconds, even for the bare side alone, and a sum over several drains holds from run to
 * run where one drain does not.
 * `ratio` is events per second (wall), `cpu_ratio` events per CPU-second: ours spreads over
 * its Redis reader thread and its main thread, so it uses more CPU than wall time.
 */
export const statsIngest: Benchmark = {
  name: 'stats_ingest',
  goals: { ratio: '≥ 0.6', cpu_ratio: '-', lag_p99_ms: '≤ 100', ours_ev_s: '-', bare_ev_s: '-' },
  warmup: WARMUP,
  rounds: 13,
  async setup(h) {
    await startSide(h, 'ours');
    await startSide(h, 'bare');
    lagRedis = await startRedis(h);
    lagPub = new RespPublisher(lagRedis.port);
    h.onCleanup(async () => lagPub.close());
  },
  async round(h, round) {
    for (const kind of ['ours', 'bare'] as const) await freshWorker(h, kind, round);
    const figures = rateFigures('ev', EVENTS, await alternate(PAIRS, drain, publishBoth));
    // The lag is steady from run to run: three samples are enough.
    if (round >= WARMUP && round < WARMUP + LAG_ROUNDS) figures.lag_p99_ms = await lag(h, round);
    return figures;
  },
};
