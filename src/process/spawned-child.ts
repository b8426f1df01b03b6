import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import type { Logger } from '../log/logger.js';
import type { SpawnSpec } from './child-types.js';

/** A process this monitor spawned, in a process group of its own: the counterpart of AdoptedProcess. */
export class SpawnedChild {
  readonly exited: Promise<void>;
  private readonly process: ResultPromise;

  constructor(
    spec: SpawnSpec,
    output: 'pipe' | 'ignore',
    private readonly name: string,
    private readonly log: Logger,
  ) {
    const child = execa(spec.file, spec.args, {
      cwd: spec.cwd,
      reject: false,
      buffer: false,
      stdin: 'ignore',
      stdout: output,
      stderr: output,
      cleanup: true,
      // Own process group: a Ctrl-C or a group signal meant for the monitor must not reach
      // turnserver before the monitor has withdrawn the host from discovery.
      detached: true,
    });
    this.process = child;
    this.exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.on('error', (err) => log.error({ event: 'spawn-error', err: err.message }, `${name} spawn error`));
  }

  /** Undefined when it was not spawned: the binary is missing or not executable. */
  get pid(): number | undefined {
    return this.process.pid;
  }

  /** A child that was not spawned gets no 'exit' event: this resolves once execa has given up on it. */
  async failed(): Promise<void> {
    await this.process.catch(() => undefined);
  }

  onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    this.process.once('exit', listener);
  }

  /** Each line it writes on stdout or stderr (with output 'pipe'). */
  onLine(listener: (line: string, stream: 'stdout' | 'stderr') => void): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const source = this.process[stream];
      if (!source) continue;
      createInterface({ input: source, crlfDelay: Infinity }).on('line', (line) => listener(line, stream));
    }
  }

  /** A child already gone is no error. */
  signal(sig: NodeJS.Signals): void {
    try {
      this.process.kill(sig);
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, SIGKILL after timeoutMs; resolves once it exited (at once if it was never spawned). */
  async terminate(timeoutMs: number): Promise<void> {
    const pid = this.pid;
    if (pid === undefined) return;
    this.log.info({ event: 'stopping', childPid: pid, signal: 'SIGTERM' }, `stopping ${this.name}`);
    this.signal('SIGTERM');
    const escalate = setTimeout(() => {
      this.log.warn({ event: 'kill-escalated', childPid: pid }, `${this.name} ignored SIGTERM: sending SIGKILL`);
      this.signal('SIGKILL');
    }, timeoutMs);
    await this.exited;
    clearTimeout(escalate);
  }

  /** Handover: no exit of it is ours to handle any more. */
  release(): void {
    this.process.removeAllListeners('exit');
  }
}
