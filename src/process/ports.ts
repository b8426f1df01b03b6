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

// Relay ranges lie above freePort's ports. (Below them, 1100-19999, uclient's channel binds failed
// with 400 "same channel number with different peer" in a benchmark run.)
const RANGE_FROM = 33000;
const RANGE_TO = 59999;
// Each process starts at its own place (several test files at once) and hands blocks out in
// order, so a long run (the benchmarks) never runs out of them; after a wrap-around only ports
// still bound are skipped.
let rangeCursor = RANGE_FROM + Math.floor(Math.random() * (RANGE_TO - RANGE_FROM));

/** A block of `count` consecutive free UDP ports (turnserver's relay range). */
export async function freePortRange(count: number, host = '127.0.0.1'): Promise<[number, number]> {
  for (let i = 0; i < 100; i++) {
    if (rangeCursor + count > RANGE_TO) rangeCursor = RANGE_FROM;
    const start = rangeCursor;
    rangeCursor += count;
    let ok = true;
    for (let p = start; p < start + count && ok; p++) ok = await udpFree(p, host);
    if (ok) return [start, start + count - 1];
  }
  throw new Error(`no ${count} consecutive free UDP ports between ${RANGE_FROM} and ${RANGE_TO}`);
}
