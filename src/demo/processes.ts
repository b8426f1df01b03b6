import { spawn, type ChildProcess } from 'node:child_process';
import { isAlive, killPid } from '../process/pids.js';

/** Children the demo started; every one is stopped by PID at the end, or on Ctrl-C. */
export class DemoProcesses {
  private readonly children: { name: string; child: ChildProcess }[] = [];

  start(name: string, file: string, args: string[], opts: { quiet?: boolean } = {}): ChildProcess {
    const child = spawn(file, args, { stdio: ['ignore', opts.quiet ? 'ignore' : 'pipe', 'pipe'] });
    this.children.push({ name, child });
    child.stderr?.resume();
    return child;
  }

  /** Stop in reverse start order: SIGTERM, SIGKILL after 5 s. */
  async stopAll(): Promise<void> {
    for (const { child } of this.children.reverse()) {
      if (child.pid && isAlive(child.pid)) await killPid(child.pid, 5000);
    }
    this.children.length = 0;
  }
}
