// Benchmark worker: the lines of a file, over and over, through the log parser and the model
// ("ours"), or only split into lines ("bare"), both read and split by the monitor's own FileFollower
// (synchronous reads, as the monitor follows turnserver's log). It never reports: the benchmark
// runs it in time slices (SIGCONT/SIGSTOP) and reads its progress from /proc (bytes read).
import { statSync } from 'node:fs';
import { FileFollower } from '../../src/process/file-follower.js';
import { parseLogLine } from '../../src/stats/sources/log/log-parser.js';
import { AllocationModel } from '../../src/stats/model.js';

const [mode, file] = process.argv.slice(2);
const ours = mode === 'ours';
const { dev, ino } = statSync(file);
process.stdout.write('ready\n');
for (;;) {
  // A fresh model every pass: the same state at the same line of every pass.
  const model = new AllocationModel({ deleteGraceMs: 2000, primary: 'log' });
  const onLine = ours
    ? (line: string) => {
        const e = parseLogLine(line, 0);
        if (e) model.ingest(e, 'bench');
      }
    : () => undefined;
  const follower = new FileFollower({ path: file, pollMs: 3_600_000, onLine });
  follower.start({ file: `${dev}:${ino}`, offset: 0 });
  follower.drain();
  follower.stop();
  if (ours) model.drainDirty();
}
