import type { Command } from 'commander';
import { createSelector, type TurnHost } from '../discovery/selector.js';

interface ServersOptions {
  zookeeper: string;
  path: string;
  json?: boolean;
  watch?: boolean;
  timeout: string;
}

function age(updatedAt: string, now: number): string {
  const t = Date.parse(updatedAt);
  if (Number.isNaN(t)) return '?';
  const s = Math.max(0, Math.round((now - t) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

const mbps = (v: number | null) => (v === null ? '-' : v.toFixed(1));

/** The hosts as a plain-text table, most free first. */
export function renderTable(hosts: TurnHost[], now = Date.now()): string {
  if (hosts.length === 0) return 'no TURN hosts published\n';
  const rows = hosts.map((h) => {
    const used = h.rxMbps === null || h.txMbps === null ? null : Math.max(h.rxMbps, h.txMbps);
    return [
      h.name,
      h.freeTraffic.toFixed(1),
      used === null ? '-' : `${used.toFixed(1)}/${h.capacityMbps}`,
      mbps(h.rxMbps),
      mbps(h.txMbps),
      h.allocations === null ? '-' : String(h.allocations),
      age(h.updatedAt, now),
      h.restAddr,
      h.serving ? 'yes' : 'no',
    ];
  });
  const header = ['HOST', 'FREE Mbps', 'USED/CAP', 'RX', 'TX', 'ALLOCS', 'AGE', 'REST', 'SERVING'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || i === 7 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

async function runServers(opts: ServersOptions): Promise<number> {
  let selector: ReturnType<typeof createSelector>;
  try {
    selector = createSelector({ connect: opts.zookeeper, path: opts.path, sessionTimeoutMs: 10_000 });
  } catch (err) {
    process.stderr.write(`turn-monitor servers: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    await selector.ready(Number(opts.timeout));
  } catch (err) {
    process.stderr.write(`turn-monitor servers: ${(err as Error).message}\n`);
    await selector.close();
    return 1;
  }
  const print = () => {
    const hosts = selector.list();
    if (opts.json) process.stdout.write(JSON.stringify(hosts) + '\n');
    else process.stdout.write((opts.watch && process.stdout.isTTY ? '\x1b[2J\x1b[H' : '') + renderTable(hosts));
  };
  print();
  if (!opts.watch) {
    await selector.close();
    return 0;
  }
  // Redraw on every change (coalesced), and once a second in a terminal so AGE moves.
  let pending: NodeJS.Timeout | null = null;
  selector.on('change', () => {
    pending ??= setTimeout(() => {
      pending = null;
      if (!opts.json) process.stdout.write('\n');
      print();
    }, 50);
  });
  const ticker = process.stdout.isTTY && !opts.json ? setInterval(print, 1000) : null;
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  if (ticker) clearInterval(ticker);
  if (pending) clearTimeout(pending);
  await selector.close();
  return 0;
}

export function registerServers(program: Command): void {
  program
    .command('servers')
    .description('list the TURN hosts published in ZooKeeper: free/used bandwidth, allocations, age of the data')
    .requiredOption('--zookeeper <host:port>', 'ZooKeeper connect string')
    .option('--path <path>', 'parent node of the host nodes', '/turn/servers')
    .option('--json', 'print JSON (one array; with --watch one array a line per change)')
    .option('--watch', 'keep watching and print again on every change')
    .option('--timeout <ms>', 'how long to wait for ZooKeeper', '5000')
    .action(async (opts: ServersOptions) => {
      process.exitCode = await runServers(opts);
    });
}
