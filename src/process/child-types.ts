import type { Logger } from '../log/logger.js';
import { procStartMs } from './pids.js';

// The shapes ManagedChild is configured with and reports; its behaviour is in managed-child.ts.

export type ChildState = 'idle' | 'starting' | 'ready' | 'restarting' | 'stopping' | 'stopped' | 'failed';

export interface SpawnSpec {
  file: string;
  args: string[];
  cwd?: string;
}

export interface ManagedChildOptions {
  /** Used in logs and errors ("turnserver", "redis"). */
  name: string;
  logger: Logger;
  /** Called before every spawn: the command may change between runs (re-rendered config). */
  spawnSpec(): Promise<SpawnSpec>;
  /** One readiness/liveness check; true when the child is serving. */
  probe(timeoutMs?: number): Promise<boolean>;
  /** Pids of copies left running by an earlier monitor; stopped before the first spawn (or one adopted, see adopt). */
  findOrphans(): number[];
  /**
   * Adopt a single copy left running by an earlier monitor when it answers its probe, instead of
   * stopping it: it is then watched like a child (liveness by polling its pid, plus the probe) and
   * replaced by a child of ours restartDelayMs after it dies.
   */
  adopt?: boolean;
  /** 'pipe' (default): stdout/stderr lines go to onLine. 'ignore': the child logs elsewhere (a file), so it outlives us. */
  output?: 'pipe' | 'ignore';
  /** Each line the child writes on stdout or stderr. */
  onLine(line: string, stream: 'stdout' | 'stderr'): void;
  /** A line that proves the child cannot start (port taken): fail fast instead of waiting. */
  startupFailure?(line: string): string | null;
  restartDelayMs: number;
  maxRestartDelayMs: number;
  /** How long before a restart is due its spawn spec is prepared (default 50 ms): the child starts on time. */
  prepareLeadMs?: number;
  stopTimeoutMs: number;
  probeIntervalMs: number;
  readyTimeoutMs: number;
  /** Consecutive failed liveness probes after which the child counts as hung. */
  maxProbeMisses?: number;
}

export interface ChildExit {
  pid: number;
  runId: string;
  code: number | null;
  signal: string | null;
  at: Date;
  wasReady: boolean;
}

export interface ChildRun {
  pid: number;
  /** `<process start, ms since epoch, from /proc>-<pid>`: the same for every monitor that looks at this process. */
  runId: string;
  startedAt: Date;
  /** Started by an earlier monitor and adopted by this one. */
  adopted?: boolean;
}

/** A run id that any monitor derives alike from the process itself (pid + its start time in /proc). */
export function runIdOf(pid: number, fallback = Date.now()): string {
  return `${procStartMs(pid) ?? fallback}-${pid}`;
}

export interface ManagedChildEvents {
  spawn: [ChildRun];
  /** A copy left by an earlier monitor serves and is now ours to watch (followed by 'ready'). */
  adopted: [ChildRun];
  /** The child answered its probe: it serves. */
  ready: [ChildRun];
  exit: [ChildExit];
  'restart-scheduled': [{ delayMs: number }];
  /** It stopped answering its liveness probe and is being killed. */
  hung: [ChildRun];
  state: [ChildState];
}
