import { readFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { writeFileAtomic } from '../util/atomic-write.js';
import { workerEntry } from '../util/worker-entry.js';
import type { UsageReply, UsageRequest } from './local-usage-thread.js';
import type { OverUsage, StateRow } from './plan.js';
import type { BadRow, CheckInput, QuotaStore } from './store.js';

const threadEntry = workerEntry(import.meta.url, 'local-usage-thread');

/**
 * Quotas on a single host without PostgreSQL: usage from this host's own usage.db (summed on a
 * worker thread), overrides from `quotas.clients`, the enforcer's state in dataDir/quota-state.json.
 * This host is always the enforcer.
 */
export class LocalQuotaStore implements QuotaStore {
  readonly kind = 'local' as const;
  private worker: Worker | null = null;
  private readonly pending = new Map<number, { resolve: (r: UsageReply) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private cached: StateRow[] | null = null;

  constructor(
    private readonly dbFile: string,
    private readonly stateFile: string,
    private readonly overrides: Readonly<Record<string, number | null>>,
  ) {}

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(threadEntry.code, { eval: threadEntry.eval, workerData: { file: this.dbFile } });
    w.on('message', (m: UsageReply) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      p?.resolve(m);
    });
    const fail = (err: Error) => {
      if (this.worker === w) this.worker = null;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', () => fail(new Error('the quota usage thread exited')));
    this.worker = w;
    return w;
  }

  private async sums(start: number, end: number, clientId: string | null) {
    const id = this.nextId++;
    const reply = await new Promise<UsageReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread().postMessage({ id, start, end, clientId } satisfies UsageRequest);
    });
    if ('error' in reply) throw new Error(`reading usage.db: ${reply.error}`);
    return reply.rows;
  }

  private quotaOf(clientId: string, defaultBytes: number | null): number | null {
    return Object.hasOwn(this.overrides, clientId) ? (this.overrides[clientId] ?? null) : defaultBytes;
  }

  async lead(): Promise<boolean> {
    return true;
  }

  async over(input: CheckInput): Promise<OverUsage[]> {
    const out: OverUsage[] = [];
    for (const r of await this.sums(input.start, input.end, null)) {
      const quota = this.quotaOf(r.clientId, input.defaultBytes);
      if (quota !== null && r.used >= input.warnAt * quota) out.push({ ...r, quota });
    }
    return out;
  }

  async states(): Promise<StateRow[]> {
    if (this.cached) return this.cached;
    try {
      this.cached = JSON.parse(await readFile(this.stateFile, 'utf8')) as StateRow[];
    } catch {
      this.cached = [];
    }
    return this.cached;
  }

  async save(rows: StateRow[], drop: { realm: string; clientId: string }[]): Promise<void> {
    if (rows.length === 0 && drop.length === 0) return;
    const key = (r: { realm: string; clientId: string }) => `${r.realm}\n${r.clientId}`;
    const gone = new Set([...rows, ...drop].map(key));
    this.cached = [...(await this.states()).filter((s) => !gone.has(key(s))), ...rows];
    await writeFileAtomic(this.stateFile, JSON.stringify(this.cached), 0o600);
  }

  async badRows(): Promise<BadRow[]> {
    return []; // quotas.clients is validated with the config
  }

  async usageOf(realm: string, clientId: string, input: CheckInput): Promise<{ used: number; quota: number | null }> {
    const rows = await this.sums(input.start, input.end, clientId);
    return {
      used: rows.filter((r) => r.realm === realm).reduce((a, r) => a + r.used, 0),
      quota: this.quotaOf(clientId, input.defaultBytes),
    };
  }

  reset(): void {}

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    await w?.terminate();
  }
}
