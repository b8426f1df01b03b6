import dgram from 'node:dgram';
import net from 'node:net';
import { release, reserve } from './port-reservations.js';

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
 * out twice: not by one process, nor by processes sharing reservations (port-reservations.ts).
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12000);
    if (taken.has(port) || !reserve(`port-${port}`)) continue;
    if ((await tcpFree(port, host)) && (await udpFree(port, host))) {
      taken.add(port);
      return port;
    }
    release(`port-${port}`);
  }
  throw new Error('no free port found');
}

// Where relay ranges lie: above the ports freePort hands out (the span every suite ran cleanly with).
// Ranges are made of whole blocks, so that a reservation is one file per block, not per port.
const RANGE_FROM = 33000;
const RANGE_TO = 48000;
const BLOCK = 100;
const BLOCKS = (RANGE_TO - RANGE_FROM) / BLOCK;
/** Blocks (by index) this process has handed out. */
const takenBlocks = new Set<number>();

async function allUdpFree(from: number, count: number, host: string): Promise<boolean> {
  for (let p = from; p < from + count; p++) if (!(await udpFree(p, host))) return false;
  return true;
}

function releaseBlocks(first: number, end: number): void {
  for (let b = first; b < end; b++) release(`range-${b}`);
}

/** Reserve blocks first..first+n-1 (all or none); `reuseOwn` lets this process take its own again. */
function reserveBlocks(first: number, n: number, reuseOwn: boolean): boolean {
  for (let b = first; b < first + n; b++) {
    if (reserve(`range-${b}`, reuseOwn)) continue;
    if (!reuseOwn) releaseBlocks(first, b);
    return false;
  }
  return true;
}

/** A block of `count` consecutive free UDP ports (turnserver's relay range). */
export async function freePortRange(count: number, host = '127.0.0.1'): Promise<[number, number]> {
  const n = Math.ceil(count / BLOCK);
  const tryAt = async (first: number, reuseOwn: boolean): Promise<[number, number] | null> => {
    const start = RANGE_FROM + first * BLOCK;
    if (!reserveBlocks(first, n, reuseOwn)) return null;
    if (await allUdpFree(start, count, host)) {
      for (let b = first; b < first + n; b++) takenBlocks.add(b);
      return [start, start + count - 1];
    }
    // Blocks this process may still use (the fallback) stay reserved; fresh ones go back.
    if (!reuseOwn) releaseBlocks(first, first + n);
    return null;
  };
  for (let i = 0; i < 50; i++) {
    const first = Math.floor(Math.random() * (BLOCKS - n + 1));
    let overlaps = false;
    for (let b = first; b < first + n; b++) overlaps ||= takenBlocks.has(b);
    const got = overlaps ? null : await tryAt(first, false);
    if (got) return got;
  }
  // A long run in one process (the benchmarks) has marked most blocks taken, though the monitors
  // that had them are gone: take the first blocks free now that no other process holds.
  for (let first = 0; first + n <= BLOCKS; first += n) {
    const got = await tryAt(first, true);
    if (got) return got;
  }
  throw new Error(`no ${count} consecutive free UDP ports between ${RANGE_FROM} and ${RANGE_TO}`);
}
