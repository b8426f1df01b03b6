import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import path from 'node:path';

/** A counter file that is missing or unreadable: reported in the log and /health, never a crash. */
export class CounterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CounterError';
  }
}

/**
 * The interface carrying the default route, from /proc/net/route text: destination and mask
 * 00000000 with the RTF_UP flag; the lowest metric wins. null when there is none.
 */
export function parseDefaultRoute(text: string): string | null {
  let best: { iface: string; metric: number } | null = null;
  for (const line of text.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 8) continue;
    const [iface, destination, , flagsHex, , , metricText, mask] = cols;
    const flags = parseInt(flagsHex, 16);
    if (destination !== '00000000' || mask !== '00000000' || !(flags & 0x1)) continue;
    const metric = Number(metricText);
    if (!best || metric < best.metric) best = { iface, metric };
  }
  return best?.iface ?? null;
}

export async function defaultRouteInterface(procNetRoute: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(procNetRoute, 'utf8');
  } catch (err) {
    throw new CounterError(
      `cannot read ${procNetRoute}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  return parseDefaultRoute(text);
}

/** Parse one statistics file's content: a non-negative decimal integer. */
export function parseCounter(text: string, file: string): number {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) throw new CounterError(`${file} does not hold a byte counter`);
  return Number(trimmed);
}

function readCounter(file: string): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CounterError(
      code === 'ENOENT'
        ? `${file} does not exist (interface missing?)`
        : `cannot read ${file}: ${code ?? (err as Error).message}`,
    );
  }
  return parseCounter(text, file);
}

/**
 * rx_bytes and tx_bytes of `iface` under a sysfs-like folder (tests point it at a temp dir), with
 * the monotonic time of the reading. Synchronous on purpose: two small sysfs reads are cheap,
 * and the timestamp must belong to the reading, not to when an async callback got its turn.
 */
export function readInterfaceCounters(
  sysClassNet: string,
  iface: string,
): { rxBytes: number; txBytes: number; atMs: number } {
  const dir = path.join(sysClassNet, iface, 'statistics');
  const atMs = performance.now();
  const rxBytes = readCounter(path.join(dir, 'rx_bytes'));
  const txBytes = readCounter(path.join(dir, 'tx_bytes'));
  return { rxBytes, txBytes, atMs };
}
