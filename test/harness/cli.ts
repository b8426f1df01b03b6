import { closeSync, openSync } from 'node:fs';
import type { Harness, Tracked } from './harness.js';
import { monitorBin } from './monitor.js';

/**
 * `turn-monitor <args>` with its stdout written straight to `file` (a large export never passes
 * through this process's memory); stderr stays in the harness's output.
 */
export function cliToFile(h: Harness, args: string[], file: string): Tracked {
  const fd = openSync(file, 'w');
  try {
    return h.spawn('cli', process.execPath, [monitorBin, ...args], { stdio: ['ignore', fd, 'pipe'] });
  } finally {
    closeSync(fd);
  }
}
