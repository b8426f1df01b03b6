// `npm run bench [-- --only NAME] [-- --out FILE]`: every benchmark against real processes on
// loopback, ours and its baseline alternating in the same run (warm-up rounds thrown away, then
// ≥ 3 rounds, a ratio per round from one adjacent pair); prints a table and writes
// {"<benchmark>": {"<figure>": {min, median, max, runs}}}.
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Harness } from '../test/harness/harness.js';
import { credentialApi } from './credential-api.js';
import { discovery } from './discovery.js';
import { drain } from './drain.js';
import { exportBench } from './export.js';
import { fleetStore } from './fleet-store.js';
import { history } from './history.js';
import { idle } from './idle.js';
import { summarize, type Benchmark, type Summary } from './lib.js';
import { memory } from './memory.js';
import { monitorRestart } from './monitor-restart.js';
import { quota } from './quota.js';
import { recovery } from './recovery.js';
import { relay } from './relay.js';
import { relayTls } from './relay-tls.js';
import { revoke } from './revoke.js';
import { rollupChoice } from './rollup-choice.js';
import { sessions } from './sessions.js';
import { statsIngest } from './stats-ingest.js';
import { statsIngestLog } from './stats-ingest-log.js';
import { tlsReload } from './tls-reload.js';
import { webhooksBench } from './webhooks.js';

const ALL: Benchmark[] = [
  statsIngest,
  statsIngestLog,
  credentialApi,
  relay,
  relayTls,
  recovery,
  tlsReload,
  memory,
  discovery,
  idle,
  monitorRestart,
  revoke,
  drain,
  sessions,
  exportBench,
  fleetStore,
  history,
  webhooksBench,
  rollupChoice,
  quota,
];

// quiesce() collects the harness's own garbage before a timed window, not during it.
setFlagsFromString('--expose-gc');
(globalThis as { gc?: () => void }).gc = runInNewContext('gc') as () => void;

const { values } = parseArgs({
  options: { only: { type: 'string' }, out: { type: 'string', default: 'bench-results.json' } },
});
const selected = values.only ? ALL.filter((b) => b.name === values.only) : ALL;
if (selected.length === 0) {
  console.error(`unknown benchmark ${values.only}; known: ${ALL.map((b) => b.name).join(', ')}`);
  process.exit(2);
}

let current: Harness | null = null;
const abort = async () => {
  await current?.cleanup().catch(() => undefined);
  process.exit(130);
};
process.on('SIGINT', abort);
process.on('SIGTERM', abort);

const results: Record<string, Record<string, Summary>> = {};
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
console.log(`turn-monitor benchmarks on ${os.cpus().length} × ${cpu}, node ${process.version}`);
for (const b of selected) {
  const started = Date.now();
  current = await Harness.create(`bench-${b.name}`);
  const runs: Record<string, number[]> = {};
  try {
    await b.setup?.(current);
    const warmup = b.warmup ?? 0;
    for (let round = 0; round < warmup + (b.rounds ?? 3); round++) {
      const figures = await b.round(current, round);
      if (round < warmup) continue; // thrown away
      for (const [k, v] of Object.entries(figures)) (runs[k] ??= []).push(v);
    }
    for (const [k, v] of Object.entries(b.finish?.() ?? {})) runs[k] = [v];
  } catch (err) {
    console.error(`${b.name}: failed: ${(err as Error).stack}`);
    process.exitCode = 1;
  } finally {
    await current.cleanup().catch((err) => console.error(`${b.name}: ${(err as Error).message}`));
    current = null;
  }
  results[b.name] = Object.fromEntries(Object.entries(runs).map(([k, v]) => [k, summarize(v)]));
  for (const [k, s] of Object.entries(results[b.name])) {
    console.log(
      `${b.name.padEnd(17)} ${k.padEnd(14)} median ${String(s.median).padStart(10)}  min ${String(s.min).padStart(10)}  max ${String(s.max).padStart(10)}  goal ${b.goals[k] ?? '-'}`,
    );
  }
  console.log(`${b.name.padEnd(17)} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}
writeFileSync(values.out!, JSON.stringify(results, null, 2));
console.log(`results written to ${values.out}`);
