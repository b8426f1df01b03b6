import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Harness, Tracked } from './harness.js';
import { killPid } from '../../src/process/pids.js';
import { waitUntil } from '../../src/process/wait.js';
import { freePort } from '../../src/process/ports.js';
import { tcpSay, zookeeperCommand, zookeeperServing } from '../../src/demo/services.js';

export interface Service {
  port: number;
  tracked: Tracked;
  pid: number;
  /** Stop by PID (SIGTERM, then SIGKILL). */
  stop(): Promise<void>;
}

/** A throwaway redis-server on a free loopback port, no persistence. */
export async function startRedis(h: Harness, port?: number): Promise<Service> {
  const p = port ?? (await freePort());
  const dir = path.join(h.dir, `redis-${p}`);
  mkdirSync(dir, { recursive: true });
  const tracked = h.spawn('redis', 'redis-server', [
    '--port',
    String(p),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
    '--pidfile',
    path.join(dir, 'redis.pid'),
    '--client-output-buffer-limit',
    'pubsub 0 0 0',
  ]);
  await waitUntil(`redis on ${p}`, async () => (await tcpSay(p, 'PING\r\n', 300)).startsWith('+PONG'), 10_000);
  return { port: p, tracked, pid: tracked.pid, stop: () => killPid(tracked.pid) };
}

/** A throwaway standalone ZooKeeper (java with a generated zoo.cfg), ready when `srvr` says standalone. */
export async function startZookeeper(h: Harness, port?: number): Promise<Service & { connect: string }> {
  const p = port ?? (await freePort());
  const { file, args } = zookeeperCommand(path.join(h.dir, `zk-${p}`), p);
  const tracked = h.spawn('zookeeper', file, args);
  await waitUntil(`zookeeper on ${p}`, () => zookeeperServing(p), 30_000);
  return { port: p, tracked, pid: tracked.pid, connect: `127.0.0.1:${p}`, stop: () => killPid(tracked.pid) };
}

/** turnutils_peer echoing on a free loopback port. */
export async function startPeer(h: Harness): Promise<Service> {
  const p = await freePort();
  const tracked = h.spawn('peer', 'turnutils_peer', ['-p', String(p), '-L', '127.0.0.1']);
  // The peer has no ready signal; it binds at once. Wait until the kernel shows the socket.
  await waitUntil(`turnutils_peer on ${p}`, () => udpBound(p), 5000);
  return { port: p, tracked, pid: tracked.pid, stop: () => killPid(tracked.pid) };
}

/**
 * Whether a UDP socket is bound to the loopback port, read from /proc/net/udp. Probing by binding
 * it ourselves would race the peer's own bind and make it fail with EADDRINUSE.
 */
function udpBound(port: number): boolean {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/udp', 'utf8')
    .split('\n')
    .some((line) => line.trim().split(/\s+/)[1] === local);
}

export interface UclientOptions {
  turnPort: number;
  peerPort: number;
  user?: string;
  password?: string;
  /** REST-API shared secret (-W) instead of a password. */
  secret?: string;
  clients?: number;
  messages?: number;
  length?: number;
  /** -t: TCP to the server; -T: TCP relay. */
  tcp?: boolean;
  tcpRelay?: boolean;
  /** -S -t: TURN over TLS (turns:) to turnPort, which must be the TLS port. */
  tls?: boolean;
  /** -s: relay with Send indications instead of ChannelData. */
  sendIndications?: boolean;
  /** -c: no extra RTCP allocation per client (default true: one allocation per client). */
  noRtcp?: boolean;
  extraArgs?: string[];
  timeoutMs?: number;
  /** uclient's environment (default: this process's). */
  env?: NodeJS.ProcessEnv;
}

/** Run turnutils_uclient to completion; returns its exit and output (ends with loss figures). */
/** turnutils_uclient's arguments for these options. */
function uclientArgs(o: UclientOptions): string[] {
  const args = [
    '-e',
    '127.0.0.1',
    '-r',
    String(o.peerPort),
    '-p',
    String(o.turnPort),
    '-m',
    String(o.clients ?? 1),
    '-n',
    String(o.messages ?? 20),
    '-l',
    String(o.length ?? 100),
  ];
  if (o.user) args.push('-u', o.user);
  if (o.secret) args.push('-W', o.secret);
  else if (o.password) args.push('-w', o.password);
  if (o.tcp) args.push('-t');
  if (o.tcpRelay) args.push('-T');
  if (o.tls) args.push('-S', ...(o.tcp ? [] : ['-t']));
  if (o.sendIndications) args.push('-s');
  if (o.noRtcp ?? true) args.push('-c');
  args.push(...(o.extraArgs ?? []), '127.0.0.1');
  return args;
}

/** Start turnutils_uclient without waiting for it (a relay that runs while the test acts). */
export function spawnUclient(h: Harness, o: UclientOptions, name = 'uclient'): Tracked {
  return h.spawn(name, 'turnutils_uclient', uclientArgs(o), { env: o.env });
}

export async function runUclient(h: Harness, o: UclientOptions) {
  const args = uclientArgs(o);
  const result = await h.run('uclient', 'turnutils_uclient', args, { timeoutMs: o.timeoutMs ?? 60_000, env: o.env });
  const lost = /Total lost packets (\d+) \(([\d.]+)%\)/.exec(result.output);
  // Progress lines repeat the counters; the last one is the total.
  const sent = [...result.output.matchAll(/tot_send_bytes ~ (\d+)/g)].pop();
  return {
    ...result,
    ok: result.code === 0,
    lostPackets: lost ? Number(lost[1]) : null,
    lossPercent: lost ? Number(lost[2]) : null,
    sentBytes: sent ? Number(sent[1]) : null,
  };
}
