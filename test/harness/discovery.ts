// Helpers for the discovery tests: a plain ZooKeeper client watching the monitor's node, and a
// fake NIC whose byte counters advance at a given rate (written by a worker thread every ~1 ms,
// atomically by rename, so a reading is never torn and never more than ~1 ms stale).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import zookeeper from 'node-zookeeper-client';

export type ZkClient = zookeeper.Client;

export async function zkConnect(connect: string, sessionTimeout = 4000): Promise<ZkClient> {
  const c = zookeeper.createClient(connect, { sessionTimeout, spinDelay: 200 });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ZooKeeper session at ${connect}`)), 10_000);
    c.once('connected', () => {
      clearTimeout(t);
      resolve();
    });
    c.connect();
  });
  return c;
}

export function zkClose(c: ZkClient): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, 1000);
    c.once('disconnected', () => {
      clearTimeout(t);
      resolve();
    });
    c.close();
  });
}

export interface NodeView {
  json: Record<string, any>;
  owner: string;
  version: number;
}

export function getNode(c: ZkClient, p: string): Promise<NodeView | null> {
  return new Promise((resolve, reject) =>
    c.getData(p, (err, data, stat) => {
      if (err) return (err as { code?: number }).code === zookeeper.Exception.NO_NODE ? resolve(null) : reject(err);
      resolve({ json: JSON.parse(data.toString()), owner: stat.ephemeralOwner.toString('hex'), version: stat.version });
    }),
  );
}

export function createNode(
  c: ZkClient,
  p: string,
  data: unknown,
  mode = zookeeper.CreateMode.EPHEMERAL,
): Promise<void> {
  return new Promise((resolve, reject) =>
    c.mkdirp(path.posix.dirname(p), (err) => {
      if (err) return reject(err);
      c.create(p, Buffer.from(JSON.stringify(data)), mode, (e) => (e ? reject(e) : resolve()));
    }),
  );
}

export function setNode(c: ZkClient, p: string, data: unknown): Promise<void> {
  return new Promise((resolve, reject) =>
    c.setData(p, Buffer.from(JSON.stringify(data)), (e) => (e ? reject(e) : resolve())),
  );
}

export function removeNode(c: ZkClient, p: string): Promise<void> {
  return new Promise((resolve, reject) => c.remove(p, (e) => (e ? reject(e) : resolve())));
}

/**
 * Watches one path with exists-watches and records every creation/deletion with the time this
 * process saw it; waitFor() resolves on the first matching record (past or future).
 */
export class NodeWatch {
  readonly events: { type: 'created' | 'deleted' | 'changed'; at: number }[] = [];
  private waiters: (() => void)[] = [];
  private closed = false;

  constructor(
    private readonly c: ZkClient,
    readonly path: string,
  ) {}

  /** Whether the node existed at the last event or answer seen; null before the first. */
  private present: boolean | null = null;

  async start(): Promise<boolean> {
    return this.arm();
  }

  private arm(): Promise<boolean> {
    return new Promise((resolve) =>
      this.c.exists(
        this.path,
        (event) => {
          const at = Date.now();
          const t = event.getType();
          const type =
            t === zookeeper.Event.NODE_CREATED ? 'created' : t === zookeeper.Event.NODE_DELETED ? 'deleted' : 'changed';
          if (type !== 'changed') this.present = type === 'created';
          this.record(type, at);
          if (!this.closed) void this.arm();
        },
        (err, stat) => {
          // A failed exists() says nothing of the node: only an answer changes what was seen.
          if (err) return resolve(false);
          // A change between a watch firing and its re-arm has no event of its own (e.g. a
          // session expiry deleting the node while the re-arm waited on a frozen server): the
          // re-arm's answer tells it, seen when the answer arrives.
          const exists = !!stat;
          if (this.present !== null && exists !== this.present) this.record(exists ? 'created' : 'deleted', Date.now());
          this.present = exists;
          resolve(exists);
        },
      ),
    );
  }

  private record(type: 'created' | 'deleted' | 'changed', at: number): void {
    this.events.push({ type, at });
    for (const w of this.waiters.splice(0)) w();
  }

  waitFor(type: 'created' | 'deleted' | 'changed', opts: { after?: number; timeoutMs?: number } = {}): Promise<number> {
    const after = opts.after ?? 0;
    const timeoutMs = opts.timeoutMs ?? 15_000;
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = this.events.find((x) => x.type === type && x.at >= after);
        if (e) {
          clearTimeout(timer);
          resolve(e.at);
          return true;
        }
        return false;
      };
      const timer = setTimeout(
        () => reject(new Error(`no '${type}' of ${this.path} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      if (check()) return;
      const loop = () => {
        if (!check()) this.waiters.push(loop);
      };
      this.waiters.push(loop);
    });
  }

  close(): void {
    this.closed = true;
  }
}

const WORKER = `
const { workerData } = require('node:worker_threads');
const { writeFileSync, renameSync } = require('node:fs');
const { performance } = require('node:perf_hooks');
// On Linux a nice value set with pid 0 is this thread's alone: keep the writer ahead of a loaded
// machine's other work so the counters stay fresh (needs privilege; without it, as before).
try { require('node:os').setPriority(-15); } catch {}
const ctl = new Float64Array(workerData.shared);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
let rx = ctl[2], tx = ctl[3], last = performance.now();
const put = (name, v) => {
  const f = workerData.dir + '/' + name;
  try { writeFileSync(f + '.tmp', String(Math.floor(v)) + '\\n'); renameSync(f + '.tmp', f); } catch {}
};
while (ctl[4] === 1) {
  const now = performance.now();
  rx += ctl[0] * (now - last) / 1000; tx += ctl[1] * (now - last) / 1000; last = now;
  if (ctl[5] === 1) { rx = 0; tx = 0; ctl[5] = 0; }
  put('rx_bytes', rx); put('tx_bytes', tx);
  Atomics.wait(sleeper, 0, 0, 1);
}
`;

/** A fake /sys/class/net/<iface>/statistics whose counters advance at rxMbps / txMbps. */
export class FakeNic {
  readonly sysClassNet: string;
  readonly statsDir: string;
  private readonly ctl: Float64Array;
  private readonly worker: Worker;

  constructor(
    dir: string,
    readonly iface: string,
    rxMbps: number,
    txMbps: number,
  ) {
    this.sysClassNet = path.join(dir, 'sys-class-net');
    this.statsDir = path.join(this.sysClassNet, iface, 'statistics');
    mkdirSync(this.statsDir, { recursive: true });
    const start = 5e9; // not zero: a real interface has history
    for (const f of ['rx_bytes', 'tx_bytes']) {
      writeFileSync(path.join(this.statsDir, `${f}.tmp`), `${start}\n`);
      renameSync(path.join(this.statsDir, `${f}.tmp`), path.join(this.statsDir, f));
    }
    const shared = new SharedArrayBuffer(8 * 6);
    this.ctl = new Float64Array(shared);
    this.ctl.set([(rxMbps * 1e6) / 8, (txMbps * 1e6) / 8, start, start, 1, 0]);
    this.worker = new Worker(WORKER, { eval: true, workerData: { shared, dir: this.statsDir } });
  }

  /** A /proc/net/route beside it whose default route goes through this interface; returns its path. */
  defaultRouteFile(): string {
    const file = path.join(path.dirname(this.sysClassNet), 'route');
    writeFileSync(
      file,
      `Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n${this.iface}\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n`,
    );
    return file;
  }

  /** Counters drop to 0 (interface reset). */
  resetCounters(): void {
    this.ctl[5] = 1;
  }

  /** Move the interface folder away (the interface vanished) or back. */
  hide(): void {
    renameSync(path.join(this.sysClassNet, this.iface), path.join(this.sysClassNet, `${this.iface}.gone`));
  }
  unhide(): void {
    renameSync(path.join(this.sysClassNet, `${this.iface}.gone`), path.join(this.sysClassNet, this.iface));
  }

  async stop(): Promise<void> {
    this.ctl[4] = 0;
    await this.worker.terminate();
  }
}
