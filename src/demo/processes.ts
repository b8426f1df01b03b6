import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { isAlive, killPidWithEscalation } from '../util/process.js';

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
      if (child.pid && isAlive(child.pid)) await killPidWithEscalation(child.pid, 5000);
    }
    this.children.length = 0;
  }
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4').once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A loopback port free for TCP and UDP. */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = net.createServer().once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    if (await udpFree(port)) return port;
  }
}

/** Send a line to a TCP port and collect the answer (ZooKeeper four-letter words). */
export function tcpSay(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const s = net.connect(port, '127.0.0.1', () => s.write(text));
    s.setTimeout(1000, () => s.destroy());
    s.on('data', (d) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
  });
}

export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}
