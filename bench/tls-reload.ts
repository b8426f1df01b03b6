import path from 'node:path';
import { linkPair, makePair, type Pair } from '../test/harness/certs.js';
import { startMonitor } from '../test/harness/monitor.js';
import { freePort } from '../src/process/ports.js';
import { tlsStunProbe } from '../src/tls/tls-probe.js';
import type { Benchmark } from './lib.js';

let tlsPort = 0;
let live = '';
const pairs: Pair[] = [];

/** Certificate files replaced (certbot-style symlink swap) → the new certificate served, 10 times. */
export const tlsReload: Benchmark = {
  name: 'tls_reload',
  goals: { ms: '≤ 2000 (p99 = max of 10)' },
  rounds: 10,
  async setup(h) {
    const archive = path.join(h.dir, 'archive');
    for (let i = 0; i < 11; i++) pairs.push(makePair(archive, `pair${i}`));
    live = path.join(h.dir, 'live');
    tlsPort = await freePort();
    await startMonitor(h, { logLevel: 'info', turnserver: { tls: { ...linkPair(live, pairs[0]), port: tlsPort } } });
  },
  async round(_h, round) {
    const next = pairs[round + 1];
    const t0 = performance.now();
    linkPair(live, next);
    while ((await tlsStunProbe('127.0.0.1', tlsPort, 1000)).fingerprint !== next.fingerprint) {
      if (performance.now() - t0 > 10_000) throw new Error('new certificate not served within 10 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    return { ms: performance.now() - t0 };
  },
};
