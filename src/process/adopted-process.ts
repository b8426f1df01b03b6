import { runIdOf, type ChildRun } from './child-types.js';
import { isAlive, killPid, procStartMs, waitForPidExit } from './pids.js';

/** How often an adopted process (not our child: no exit event) is checked for life. */
const POLL_MS = 100;

/**
 * A process an earlier monitor started and this one adopted. It is not our child, so no exit
 * event comes: its pid is polled, and onExit is called once when it is gone.
 */
export class AdoptedProcess {
  readonly run: ChildRun;
  readonly exited: Promise<void>;
  private resolveExited!: () => void;
  private timer: NodeJS.Timeout | null;
  private gone = false;

  constructor(
    readonly pid: number,
    private readonly onExit: () => void,
  ) {
    this.run = { pid, runId: runIdOf(pid), startedAt: new Date(procStartMs(pid) ?? Date.now()), adopted: true };
    this.exited = new Promise<void>((resolve) => (this.resolveExited = resolve));
    this.timer = setInterval(() => this.check(), POLL_MS);
  }

  /** A process already gone is no error. */
  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(this.pid, sig);
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, SIGKILL after timeoutMs; resolves once it is gone (and onExit ran). */
  async terminate(timeoutMs: number): Promise<void> {
    await killPid(this.pid, timeoutMs);
    await waitForPidExit(this.pid, 1000);
    // Even if it somehow survived SIGKILL, it is no longer ours to watch.
    this.check(true);
  }

  /** Stop watching (handover): it serves on for the next monitor. */
  release(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private check(force = false): void {
    if (this.gone || (!force && isAlive(this.pid))) return;
    this.gone = true;
    this.release();
    this.resolveExited();
    this.onExit();
  }
}
