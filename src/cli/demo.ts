import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import zookeeper from 'node-zookeeper-client';
import { packageRoot } from '../config/package.js';
import { DemoProcesses } from '../demo/processes.js';
import { zookeeperCommand, zookeeperServing } from '../demo/services.js';
import { freePort } from '../process/ports.js';
import { waitUntil } from '../process/wait.js';

async function startZookeeper(procs: DemoProcesses, dir: string): Promise<string> {
  const port = await freePort();
  const { file, args } = zookeeperCommand(path.join(dir, 'zk'), port);
  procs.start('zookeeper', file, args, { quiet: true });
  await waitUntil('ZooKeeper', () => zookeeperServing(port), 30_000, 100);
  return `127.0.0.1:${port}`;
}

/** Free bandwidth of every host published under the path (the signalling servers' view). */
function readHosts(client: zookeeper.Client, zkPath: string): Promise<string> {
  return new Promise((resolve) => {
    client.getChildren(zkPath, (err, children) => {
      if (err || children.length === 0) return resolve('no host published');
      client.getData(`${zkPath}/${children[0]}`, (e, data) => {
        if (e || !data) return resolve('?');
        const d = JSON.parse(data.toString('utf8')) as { freeTraffic: number; rxMbps: number | null };
        resolve(`${children[0]} free ${d.freeTraffic} Mbit/s (rx ${d.rxMbps ?? '-'} Mbit/s)`);
      });
    });
  });
}

async function runDemo(): Promise<void> {
  const started = Date.now();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'turn-monitor-demo-'));
  const procs = new DemoProcesses();
  let zkClient: zookeeper.Client | null = null;
  const cleanup = async () => {
    zkClient?.close();
    await procs.stopAll();
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  const say = (s: string) => process.stdout.write(`${s}\n`);
  try {
    say(`turn-monitor demo in ${dir} (Ctrl-C stops everything)`);
    let zkConnect: string | null = null;
    if (existsSync('/usr/share/java/zookeeper.jar')) {
      zkConnect = await startZookeeper(procs, dir);
      say(`✓ ZooKeeper on ${zkConnect}`);
    } else say('- the zookeeper package is not installed: discovery is skipped');

    const [turnPort, httpPort, peerPort] = [await freePort(), await freePort(), await freePort()];
    const relay = 40000 + Math.floor(Math.random() * 20000);
    const config = {
      dataDir: path.join(dir, 'data'),
      turnserver: {
        listeningIp: '127.0.0.1',
        listeningPort: turnPort,
        minPort: relay,
        maxPort: relay + 200,
        realm: 'demo.local',
        allowLoopbackPeers: true,
      },
      http: { host: '127.0.0.1', port: httpPort },
      zookeeper: { connect: zkConnect, path: '/turn/servers', sessionTimeoutMs: 4000 },
      discovery: { interface: 'lo', capacityMbps: 1000, intervalSec: 1 },
      // A throwaway: Ctrl-C stops it at once instead of draining.
      lifecycle: { drainTimeoutSec: 0 },
    };
    const configFile = path.join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    procs.start(
      'monitor',
      process.execPath,
      [path.join(packageRoot, 'bin', 'turn-monitor'), 'start', '--config', configFile],
      { quiet: true },
    );
    const api = `http://127.0.0.1:${httpPort}`;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the demo prints what the API answers
    const get = async (p: string) => (await fetch(api + p)).json() as Promise<any>;
    await waitUntil(
      'the monitor',
      async () => (await fetch(`${api}/health`).catch(() => null))?.status === 200,
      30_000,
    );
    say(`✓ monitor up: turnserver on 127.0.0.1:${turnPort}, private Redis, HTTP API on ${api}`);

    const cred = await get('/turncredential');
    say(`✓ GET /turncredential → user ${cred.username}, expires ${new Date(cred.expired_time).toISOString()}`);
    procs.start('peer', 'turnutils_peer', ['-p', String(peerPort), '-L', '127.0.0.1'], { quiet: true });
    await sleep(300);
    const client = procs.start(
      'uclient',
      'turnutils_uclient',
      [
        '-u',
        cred.username,
        '-w',
        cred.password,
        '-e',
        '127.0.0.1',
        '-r',
        String(peerPort),
        '-p',
        String(turnPort),
        '-m',
        '3',
        '-n',
        '10000',
        '-l',
        '200',
        '-z',
        '1',
        '-c',
        '127.0.0.1',
      ],
      { quiet: true },
    );
    const done = new Promise<number | null>((resolve) => client.once('exit', resolve));
    say('✓ relaying: 3 clients × 10,000 messages of 200 bytes through turnserver to turnutils_peer');
    say("  (coturn reports an allocation's traffic every 4096 packets and at its end, so counts grow in steps)");

    if (zkConnect) {
      zkClient = zookeeper.createClient(zkConnect);
      zkClient.connect();
    }
    let finished = false;
    void done.then(() => (finished = true));
    while (!finished) {
      const open = (await get('/allocations')) as { rcvb: number; sentb: number; peerSentb: number }[];
      const bytes = open.reduce((a, r) => a + r.rcvb + r.sentb, 0);
      const zk = zkClient ? await readHosts(zkClient, '/turn/servers') : 'discovery off';
      say(
        `  ${((Date.now() - started) / 1000).toFixed(0).padStart(3)} s  open allocations ${open.length}  client bytes ${bytes}  │ ZooKeeper: ${zk}`,
      );
      await sleep(1000);
    }
    say(`✓ traffic done (uclient exit ${await done}); waiting for coturn's final reports`);
    await sleep(2500);
    for (const by of ['allocation', 'session']) {
      say(`\nUsage by ${by}:`);
      process.stdout.write(await (await fetch(`${api}/usage?by=${by}&format=table`)).text());
    }
  } finally {
    await cleanup();
  }
  say(`\n✓ everything stopped and removed (${((Date.now() - started) / 1000).toFixed(0)} s)`);
}

/** `turn-monitor demo`: the whole product on this machine with real parts, then cleans up. */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description(
      'run ZooKeeper, the monitor, turnserver and real relayed traffic in a temp dir, show live usage, clean up',
    )
    .action(async () => {
      try {
        await runDemo();
      } catch (err) {
        process.stderr.write(`turn-monitor demo: ${(err as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
