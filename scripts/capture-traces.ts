// Records coturn's redis-statsdb pub/sub messages for a few uclient scenarios, one .jsonl file each
// ({"channel", "message"} a line, in arrival order): the captures stats-resilience.test.ts replays.
// Every scenario gets its own redis-server and turnserver on loopback, stopped by PID at its end.
//   node --import tsx scripts/capture-traces.ts [outDir]   (default test/fixtures/traces)
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { buildConfig, packageRoot } from '../src/config/load.js';
import { freePort, freePortRange } from '../src/process/ports.js';
import { waitUntil } from '../src/process/wait.js';
import { statsdbLine } from '../src/stats/sources/redis/redis-source.js';
import { renderTemplate } from '../src/supervisor/render-conf.js';
import { stunProbe } from '../src/supervisor/stun-probe.js';
import { Harness } from '../test/harness/harness.js';
import { runUclient, startPeer, startRedis, type UclientOptions } from '../test/harness/services.js';

const REALM = 'test.local';
const USER = { user: 'acct', password: 'acct-password' };
/** No message for this long after a scenario's last expected one: nothing more is coming. */
const QUIET_MS = 1500;

interface Message {
  channel: string;
  message: string;
}

/** What one allocation's messages said so far. */
interface Allocation {
  user: string;
  opened: boolean;
  freed: boolean;
  closed: boolean;
  traffic: boolean;
}

/** An ioredis subscriber (PSUBSCRIBE turn/*) keeping every message in arrival order. */
class Recorder {
  readonly messages: Message[] = [];
  lastAt = Date.now();

  private constructor(sub: Redis) {
    sub.on('pmessage', (_pattern: string, channel: string, message: string) => {
      this.messages.push({ channel, message });
      this.lastAt = Date.now();
    });
  }

  static async start(h: Harness, port: number): Promise<Recorder> {
    const sub = new Redis({ port, host: '127.0.0.1', lazyConnect: true });
    sub.on('error', () => undefined); // its Redis is stopped at the end of the scenario
    await sub.connect();
    h.onCleanup(async () => void sub.disconnect());
    await sub.psubscribe('turn/*');
    return new Recorder(sub);
  }

  allocations(): Map<string, Allocation> {
    const out = new Map<string, Allocation>();
    for (const { channel, message } of this.messages) {
      const m = /\/user\/(.*)\/allocation\/(\d+)\/(status|traffic|total_traffic\/peer)$/.exec(channel);
      if (!m) continue;
      const [, user, id, kind] = m;
      const a = out.get(id) ?? { user, opened: false, freed: false, closed: false, traffic: false };
      if (kind === 'status' && message.startsWith('new ')) a.opened = true;
      if (kind === 'status' && message.startsWith('refreshed lifetime=0,')) a.freed = true;
      if (kind === 'traffic') a.traffic = true;
      if (kind === 'total_traffic/peer') a.closed = true;
      out.set(id, a);
    }
    return out;
  }

  jsonl(): string {
    return this.messages.map((m) => JSON.stringify(m) + '\n').join('');
  }
}

type Done = (allocations: Allocation[]) => boolean;
/** Every allocation the client freed (lifetime=0) has its totals; its probe allocation stays open. */
const freedClosed: Done = (all) => all.some((a) => a.freed) && all.every((a) => !a.freed || a.closed);
/** Every allocation has its totals: the one the client freed and its probe, which expired. */
const freedAndExpired: Done = (all) =>
  all.every((a) => !a.opened || a.closed) && all.some((a) => a.freed) && all.some((a) => a.closed && !a.freed);
/** coturn reported the session that never authenticated (~60 s after it) under the username it tried. */
const failedAuthReported: Done = (all) => all.some((a) => a.user === USER.user && !a.opened && a.traffic);

interface Scenario {
  file: string;
  uclient: Partial<UclientOptions>;
  /** turnserver.conf lines beyond the common ones. */
  conf?: string[];
  authFails?: boolean;
  done: Done;
  timeoutMs: number;
}

const RELAY = { clients: 2, messages: 200, length: 170 };
const scenarios: Scenario[] = [
  { file: 'udp-channel.jsonl', uclient: RELAY, done: freedClosed, timeoutMs: 20_000 },
  {
    file: 'udp-send-indication.jsonl',
    uclient: { ...RELAY, sendIndications: true },
    done: freedClosed,
    timeoutMs: 20_000,
  },
  { file: 'tcp-relay.jsonl', uclient: { ...RELAY, tcpRelay: true }, done: freedClosed, timeoutMs: 20_000 },
  {
    file: 'expiry.jsonl',
    uclient: { clients: 1, messages: 20, length: 100 },
    // Lifetimes capped at 15 s: the probe allocation uclient never frees expires soon. (At 5 s its
    // main allocation sometimes expired too, before uclient sent anything.)
    conf: ['max-allocate-lifetime=15'],
    done: freedAndExpired,
    timeoutMs: 45_000,
  },
  {
    file: 'client-to-client.jsonl',
    uclient: { ...RELAY, extraArgs: ['-y'] },
    done: freedClosed,
    timeoutMs: 20_000,
  },
  {
    file: 'failed-auth.jsonl',
    uclient: { clients: 1, messages: 5, password: 'not-the-password' },
    authFails: true,
    done: failedAuthReported,
    timeoutMs: 120_000,
  },
];

/** A turnserver from the monitor's own template: static user, loopback peers, Redis statsdb, log on stdout. */
async function startTurnserver(h: Harness, redisPort: number, extra: string[]): Promise<number> {
  const listeningPort = await freePort();
  const [minPort, maxPort] = await freePortRange(100);
  const config = buildConfig(
    {
      dataDir: path.join(h.dir, 'turn'),
      turnserver: { listeningIp: '127.0.0.1', listeningPort, minPort, maxPort, realm: REALM, allowLoopbackPeers: true },
    },
    packageRoot,
  );
  const lines = [
    'no-cli',
    statsdbLine({ host: '127.0.0.1', port: redisPort, db: 0, password: null, tls: false }),
    `user=${USER.user}:${USER.password}`,
    'log-file=stdout',
    ...extra,
  ];
  mkdirSync(config.dataDir, { recursive: true });
  const conf = path.join(config.dataDir, 'turnserver.conf');
  writeFileSync(conf, renderTemplate(readFileSync(config.turnserver.template, 'utf8'), config, lines));
  h.spawn('turnserver', 'turnserver', ['-c', conf]);
  await waitUntil('turnserver serving', () => stunProbe('127.0.0.1', listeningPort, 200), 10_000);
  return listeningPort;
}

async function capture(h: Harness, s: Scenario): Promise<Recorder> {
  const redis = await startRedis(h);
  const recorder = await Recorder.start(h, redis.port);
  const turnPort = await startTurnserver(h, redis.port, s.conf ?? []);
  const peer = await startPeer(h);
  const run = await runUclient(h, { turnPort, peerPort: peer.port, ...USER, ...s.uclient });
  if ((run.code === 0) === !!s.authFails) throw new Error(`uclient exited ${run.code}: ${run.output.slice(-400)}`);
  await waitUntil(
    `${s.file}: the scenario's last messages`,
    () => s.done([...recorder.allocations().values()]) && Date.now() - recorder.lastAt >= QUIET_MS,
    s.timeoutMs,
    100,
  );
  return recorder;
}

function summary(r: Recorder): string {
  const all = [...r.allocations().values()];
  const count = (f: (a: Allocation) => boolean) => all.filter(f).length;
  return (
    `${r.messages.length} messages, ${all.length} allocations ` +
    `(${count((a) => a.opened)} new, ${count((a) => a.freed)} freed, ${count((a) => a.closed)} with totals)`
  );
}

const outDir = path.resolve(process.argv[2] ?? path.join(packageRoot, 'test', 'fixtures', 'traces'));
mkdirSync(outDir, { recursive: true });
for (const s of scenarios) {
  const h = await Harness.create('capture');
  let ok = false;
  try {
    const recorder = await capture(h, s);
    writeFileSync(path.join(outDir, s.file), recorder.jsonl());
    console.log(`${s.file}: ${summary(recorder)}`);
    ok = true;
  } finally {
    if (!ok) console.error(`${s.file} failed; its processes' output is kept in ${h.dir}`);
    await h.cleanup(!ok);
  }
}
