import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import type { Harness, Tracked } from './harness.js';
import { isAlive, killPid, waitForPidExit } from '../../src/process/pids.js';
import { freePort } from '../../src/process/ports.js';
import { waitUntil } from '../../src/process/wait.js';

const BIN = '/usr/lib/postgresql/15/bin';
export const PG_PASSWORD = 'pg-test-secret-4711';

export interface Postgres {
  port: number;
  /** Connection string with the superuser's password (TCP, scram-sha-256). */
  url: string;
  /** The postmaster's pid (a tracked child of the harness, run as the postgres user). */
  readonly pid: number;
  /** Fast shutdown (SIGINT), waits for the exit. */
  stop(): Promise<void>;
  /** A crash: SIGKILL of the postmaster. */
  kill(): Promise<void>;
  /** Start again on the same data dir and port. */
  start(): Promise<void>;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
}

function postgresIds(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * A throwaway PostgreSQL 15 on a free loopback port: initdb with a password for TCP (so a wrong
 * password can be tested) and trust on its unix socket, then the postmaster as a direct tracked
 * child running as the postgres user, so it is stopped by PID.
 */
export async function startPostgres(
  h: Harness,
  /** Extra server settings (`-c name=value`), e.g. shared_buffers for a benchmark. */
  settings: Record<string, string> = {},
): Promise<Postgres> {
  const port = await freePort();
  const ids = postgresIds();
  // The harness dir is root's 0700: let the postgres user traverse it into its own folder.
  chmodSync(h.dir, 0o711);
  const dir = path.join(h.dir, `pg-${port}`);
  mkdirSync(dir);
  chownSync(dir, ids.uid, ids.gid);
  const pwfile = path.join(dir, 'pw');
  writeFileSync(pwfile, PG_PASSWORD);
  chownSync(pwfile, ids.uid, ids.gid);
  const data = path.join(dir, 'data');
  const init = await h.run(
    'initdb',
    `${BIN}/initdb`,
    [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      `--pwfile=${pwfile}`,
      '--no-sync',
    ],
    { ...ids, cwd: dir },
  );
  if (init.code !== 0) throw new Error(`initdb failed: ${init.output}`);
  let tracked: Tracked | null = null;
  const url = `postgres://postgres:${PG_PASSWORD}@127.0.0.1:${port}/postgres`;

  const admin = () => new pg.Client({ host: dir, port, user: 'postgres', database: 'postgres' });
  const ready = async () => {
    const c = admin();
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.query('select 1');
      return true;
    } finally {
      await c.end().catch(() => undefined);
    }
  };
  const start = async () => {
    // After a crash the old backends may hold the shared memory a moment: retry the start.
    await waitUntil(
      `postgres on ${port}`,
      async () => {
        if (!tracked || !isAlive(tracked.pid) || tracked.child.exitCode !== null) {
          tracked = h.spawn(
            'postgres',
            `${BIN}/postgres`,
            [
              ...['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off'],
              ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
            ],
            { ...ids, cwd: dir },
          );
        }
        return ready();
      },
      20_000,
      100,
    );
  };
  await start();
  return {
    port,
    url,
    get pid() {
      return tracked!.pid;
    },
    async stop() {
      if (tracked && isAlive(tracked.pid)) {
        process.kill(tracked.pid, 'SIGINT');
        if (!(await waitForPidExit(tracked.pid, 10_000))) await killPid(tracked.pid);
      }
    },
    async kill() {
      if (tracked && isAlive(tracked.pid)) {
        process.kill(tracked.pid, 'SIGKILL');
        await waitForPidExit(tracked.pid, 5000);
      }
    },
    start,
    async query<T>(sql: string, params: unknown[] = []) {
      const c = admin();
      c.on('error', () => undefined);
      await c.connect();
      try {
        return (await c.query(sql, params)).rows as T[];
      } finally {
        await c.end().catch(() => undefined);
      }
    },
  };
}
