/** One reading of an interface's byte counters; `atMs` is a monotonic clock (performance.now()). */
export interface CounterSample {
  rxBytes: number;
  txBytes: number;
  atMs: number;
}

/** Rates in Mbit/s (10^6 bit/s) over the real time between two readings. */
export interface Rates {
  rxMbps: number;
  txMbps: number;
}

export type RateResult =
  | { kind: 'first' }
  | { kind: 'rates'; rates: Rates }
  /** The interval is skipped: a counter went backwards, no time passed, or the rate is absurd. */
  | { kind: 'skipped'; reason: 'counter-reset' | 'no-time' | 'absurd' };

/** Faster than any NIC: a jump this large means the counters changed meaning (another interface). */
export const ABSURD_MBPS = 1_000_000;

export function computeRates(prev: CounterSample | null, cur: CounterSample): RateResult {
  if (!prev) return { kind: 'first' };
  const seconds = (cur.atMs - prev.atMs) / 1000;
  if (!(seconds > 0)) return { kind: 'skipped', reason: 'no-time' };
  const drx = cur.rxBytes - prev.rxBytes;
  const dtx = cur.txBytes - prev.txBytes;
  // An interface reset or a 32-bit wrap: the delta is meaningless, take the next interval.
  if (drx < 0 || dtx < 0) return { kind: 'skipped', reason: 'counter-reset' };
  const rxMbps = (drx * 8) / 1e6 / seconds;
  const txMbps = (dtx * 8) / 1e6 / seconds;
  if (rxMbps > ABSURD_MBPS || txMbps > ABSURD_MBPS) return { kind: 'skipped', reason: 'absurd' };
  return { kind: 'rates', rates: { rxMbps, txMbps } };
}

export const round1 = (n: number): number => Math.round(n * 10) / 10;

/**
 * Free bandwidth as signalling servers read it: capacity minus the busier direction (a relay sends
 * what it receives, so either can be the bottleneck), one decimal, never below 0.
 */
export function freeTraffic(capacityMbps: number, rates: Rates | null): number {
  if (!rates) return round1(capacityMbps);
  return Math.max(0, round1(capacityMbps - Math.max(rates.rxMbps, rates.txMbps)));
}

/** What the publisher shows: the last good figures (rates null until two readings exist). */
export interface BandwidthFigures {
  freeTraffic: number;
  rxMbps: number | null;
  txMbps: number | null;
}

/**
 * Keeps the previous reading and turns each new one into figures. A skipped interval keeps the
 * previous figures and makes the new reading the baseline.
 */
export class BandwidthMeter {
  private prev: CounterSample | null = null;
  private current: BandwidthFigures;

  constructor(private readonly capacityMbps: number) {
    this.current = { freeTraffic: round1(capacityMbps), rxMbps: null, txMbps: null };
  }

  get figures(): BandwidthFigures {
    return this.current;
  }

  /** Feed one reading; returns what happened so the caller can log it. */
  add(sample: CounterSample): RateResult {
    const result = computeRates(this.prev, sample);
    this.prev = sample;
    if (result.kind === 'rates') {
      this.current = {
        freeTraffic: freeTraffic(this.capacityMbps, result.rates),
        rxMbps: round1(result.rates.rxMbps),
        txMbps: round1(result.rates.txMbps),
      };
    }
    return result;
  }

  /** Forget the baseline (the interface vanished): the next reading is a first one again. */
  resetBaseline(): void {
    this.prev = null;
  }
}
