import dgram from 'node:dgram';
import net from 'node:net';

const taken = new Set<number>();

function tcpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer().once('error', () => resolve(false));
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

function udpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4').once('error', () => resolve(false));
    s.bind(port, host, () => s.close(() => resolve(true)));
  });
}

/**
 * A loopback port free for both TCP and UDP. Picked at random from a range below the kernel's
 * ephemeral ports (32768+), so it does not collide with outgoing connections, and never handed
 * out twice by one process (parallel users in one process, several test files at once).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (taken.has(port)) continue;
    if ((await tcpFree(port, host)) && (await udpFree(port, host))) {
      taken.add(port);
      return port;
    }
  }
  throw new Error('no free port found');
}

// Where relay blocks start: above the ports freePort hands out (the span every suite ran cleanly with).
const RANGE_FROM = 33000;
const RANGE_TO = 48000;

/** A block of `count` consecutive free UDP ports (turnserver's relay range). */
export async function freePortRange(count: number, host = '127.0.0.1'): Promise<[number, number]> {
  for (let i = 0; i < 50; i++) {
    const start = RANGE_FROM + Math.floor(Math.random() * (RANGE_TO - RANGE_FROM));
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = !taken.has(p) && (await udpFree(p, host));
    if (ok) {
      for (let p = start; p < start + count; p++) taken.add(p);
      return [start, start + count - 1];
    }
  }
  // A long run in one process (the benchmarks) has marked most blocks taken, though the monitors
  // that had them are gone: take the first block whose ports are free now.
  for (let start = RANGE_FROM; start + count <= RANGE_TO; start += count) {
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = await udpFree(p, host);
    if (ok) return [start, start + count - 1];
  }
  throw new Error(`no ${count} consecutive free UDP ports between ${RANGE_FROM} and ${RANGE_TO}`);
}
