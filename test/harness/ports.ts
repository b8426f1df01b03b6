import dgram from 'node:dgram';
import net from 'node:net';

const taken = new Set<number>();

function tcpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer().once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4').once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A loopback port free for both TCP and UDP. Picked at random from a range above the kernel's
 * ephemeral ports' usual start so parallel test files rarely collide; never handed out twice in
 * one process.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (taken.has(port)) continue;
    if ((await tcpFree(port)) && (await udpFree(port))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port found');
}

/** A block of `count` consecutive free UDP ports (turnserver's relay range). */
export async function freePortRange(count: number): Promise<[number, number]> {
  for (let i = 0; i < 50; i++) {
    const start = 33000 + Math.floor(Math.random() * 15000);
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = !taken.has(p) && (await udpFree(p));
    if (ok) {
      for (let p = start; p < start + count; p++) taken.add(p);
      return [start, start + count - 1];
    }
  }
  throw new Error('no free port range found');
}
