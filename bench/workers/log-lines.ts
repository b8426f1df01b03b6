// Benchmark worker: the lines of the file on stdin through the log parser and the model ("ours"),
// or only counted ("bare"), both split into lines by readline.
import { createInterface } from 'node:readline';
import { parseLogLine } from '../../src/stats/sources/log/log-parser.js';
import { AllocationModel } from '../../src/stats/model.js';

const ours = process.argv[2] === 'ours';
const model = new AllocationModel({ deleteGraceMs: 2000, primary: 'log' });
let lines = 0;
let start = 0;
let cpuStart: NodeJS.CpuUsage | undefined;
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on('line', (line) => {
  if (lines++ === 0) {
    start = performance.now();
    cpuStart = process.cpuUsage();
  }
  if (ours) {
    const e = parseLogLine(line, 0);
    if (e) model.ingest(e, 'bench');
  }
});
rl.on('close', () => {
  if (ours) model.drainDirty();
  const cpu = process.cpuUsage(cpuStart);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  process.stdout.write(`lines=${lines} ms=${(performance.now() - start).toFixed(1)} cpu_ms=${cpuMs.toFixed(1)}\n`);
});
