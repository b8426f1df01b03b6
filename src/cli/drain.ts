import type { Command } from 'commander';
import { ApiClient, runCli } from './api-client.js';

interface DrainView {
  since: string;
  deadline: string;
  openAllocations: number;
  then: 'stop' | 'restart';
}

/**
 * `turn-monitor drain`: POST /drain on the running monitor, then show the open allocations
 * falling (one line updated in place on a TTY, a line per change otherwise) until the drain
 * ends: the monitor stops answering (then stop) or reports no drain any more (then restart).
 */
async function drain(configFile: string | undefined, opts: { timeout?: string; then: string }): Promise<void> {
  const api = ApiClient.fromConfigFile(configFile);
  const body: { then: string; timeoutSec?: number } = { then: opts.then };
  if (opts.timeout !== undefined) body.timeoutSec = Number(opts.timeout);
  const started = await api.request('POST', '/drain', body);
  if (started.status !== 202) throw new Error(`drain refused: HTTP ${started.status} ${started.body.error ?? ''}`);
  const tty = process.stdout.isTTY === true;
  let last = '';
  const show = (text: string) => {
    if (text === last) return;
    last = text;
    process.stdout.write(tty ? `\r\x1b[K${text}` : `${text}\n`);
  };
  const progress = (view: DrainView) => {
    const left = Math.max(0, Math.ceil((Date.parse(view.deadline) - Date.now()) / 1000));
    show(`draining (then ${view.then}): ${view.openAllocations} open allocation(s), deadline in ${left} s`);
  };
  // The drain as it started, even if it ends (or is cancelled) before the first look at /health.
  const first = started.body.draining as DrainView | null | undefined;
  if (first) progress(first);
  for (;;) {
    let view: DrainView | null;
    try {
      view = ((await api.request('GET', '/health')).body.draining as DrainView | null) ?? null;
    } catch {
      view = null; // the monitor stopped: the drain ended in 'stop'
    }
    if (!view) break;
    progress(view);
    await new Promise((r) => setTimeout(r, 250));
  }
  if (tty) process.stdout.write('\n');
  process.stdout.write(`drain finished (then ${opts.then})\n`);
}

export function registerDrain(program: Command): void {
  program
    .command('drain')
    .description('drain this host: no new allocations, wait for the open ones (then stop or restart turnserver)')
    .option('-c, --config <file>', 'JSON config file (default: $TURN_MONITOR_CONFIG)')
    .option('--timeout <sec>', 'deadline; what is left is cancelled (default lifecycle.drainTimeoutSec)')
    .option('--then <what>', 'stop | restart', 'stop')
    .action((opts: { config?: string; timeout?: string; then: string }) => runCli(() => drain(opts.config, opts)));
}
