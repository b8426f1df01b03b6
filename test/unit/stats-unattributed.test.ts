import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { newRecord, type AllocationRecord } from '../../src/stats/allocation-record.js';
import type { UsageEvent } from '../../src/stats/events.js';
import { UsagePipeline } from '../../src/stats/pipeline.js';
import { parseLogLine } from '../../src/stats/sources/log/log-parser.js';
import { UsageStore } from '../../src/stats/store.js';
import {
  dispositionOf,
  hasProbeSignature,
  hourlyRows,
  hourOf,
  ownProbeRule,
  type OwnProbes,
} from '../../src/stats/unattributed.js';
import { Outbox } from '../../src/export/outbox.js';
import { hourlyUpsertColumns, hourlyUpsertSql } from '../../src/export/pg-schema.js';
import { normalizeAddress, StunProber } from '../../src/supervisor/stun-probe.js';

const PROBE = '127.0.0.1:41000';
const probes = (running = true): OwnProbes => ({
  isOwnAddress: (a) => normalizeAddress(a) === PROBE,
  running: () => running,
});

/** A never-allocated record with these client (and peer) counters. */
function session(client: number[], peer = [0, 0, 0, 0], username = '', extra: Partial<AllocationRecord> = {}) {
  const r = newRecord(
    {
      source: 'redis',
      at: 1000,
      realm: 'r',
      username,
      allocationId: '1',
      kind: 'traffic',
      rcvp: 0,
      rcvb: 0,
      sentp: 0,
      sentb: 0,
    },
    'run',
    'redis',
  );
  r.client = client as AllocationRecord['client'];
  r.peer = peer as AllocationRecord['peer'];
  return Object.assign(r, extra);
}

test('hours: the start of the UTC hour, whatever the local zone', () => {
  const t = Date.UTC(2026, 11, 6, 3, 59, 59, 999);
  assert.equal(hourOf(t), Date.UTC(2026, 11, 6, 3));
  assert.equal(hourOf(Date.UTC(2026, 11, 6, 4)), Date.UTC(2026, 11, 6, 4));
  assert.equal(hourOf(0), 0);
});

test('the probe signature (redis): k bare 20-byte Bindings each answered, no username, nothing relayed', () => {
  assert.equal(hasProbeSignature(session([1, 20, 1, 80])), true);
  assert.equal(hasProbeSignature(session([12, 240, 12, 960])), true);
  assert.equal(hasProbeSignature(session([12, 240, 12, 1056])), true, 'the answer size depends on the server');
  assert.equal(hasProbeSignature(session([2, 48, 2, 160])), false, 'requests with attributes');
  assert.equal(hasProbeSignature(session([3, 60, 2, 160])), false, 'one left unanswered');
  assert.equal(hasProbeSignature(session([1, 20, 1, 80], [1, 100, 0, 0])), false, 'relayed');
  assert.equal(hasProbeSignature(session([1, 20, 1, 80], undefined, 'intruder')), false, 'a username was tried');
  assert.equal(hasProbeSignature(session([0, 0, 0, 0])), false);
  assert.equal(hasProbeSignature(session([1, 20, 1, 80], undefined, '', { kind: 'allocation' })), false);
});

test('what becomes of a record: rows for allocations and relay traffic, nothing while open, hours or nothing when closed', () => {
  const closed = { endedAt: 2000, endReason: 'closed' };
  assert.equal(dispositionOf(session([1, 20, 1, 80], undefined, '', { kind: 'allocation' }), probes()), 'row');
  assert.equal(dispositionOf(session([1, 104, 0, 0], [5, 500, 5, 500], '', closed), probes()), 'row', 'relayed');
  assert.equal(dispositionOf(session([1, 104, 0, 0]), probes()), 'unstored');
  // Log: the address decides, whatever the counters.
  assert.equal(dispositionOf(session([1, 20, 1, 80], undefined, '', { ...closed, remote: PROBE }), probes()), 'probe');
  assert.equal(ownProbeRule(session([5, 20, 1, 80], undefined, '', { ...closed, remote: PROBE }), probes()), 'address');
  assert.equal(
    dispositionOf(session([1, 20, 1, 80], undefined, '', { ...closed, remote: '127.0.0.1:41001' }), probes()),
    'hourly',
    'an outside stunclient',
  );
  // Redis (no address): the signature, only while probes run.
  assert.equal(dispositionOf(session([1, 20, 1, 80], undefined, '', closed), probes()), 'probe');
  assert.equal(dispositionOf(session([1, 20, 1, 80], undefined, '', closed), probes(false)), 'hourly');
  assert.equal(dispositionOf(session([1, 20, 1, 80], undefined, '', closed), null), 'hourly');
  assert.equal(dispositionOf(session([32, 4024, 32, 3456], undefined, 'intruder', closed), probes()), 'hourly');
});

test('closed sessions summed per hour of their start, realm and username', () => {
  const h = Date.UTC(2026, 0, 1, 10);
  const at = (ms: number, user: string, client: number[], realm: string | null = 'r') =>
    session(client, undefined, user, { startedAt: ms, realm });
  const rows = hourlyRows([
    at(h + 5, '', [1, 20, 1, 80]),
    at(h + 3_599_999, '', [2, 40, 2, 160]),
    at(h + 3_600_000, '', [1, 20, 1, 80]),
    at(h + 10, 'intruder', [32, 4024, 32, 3456]),
    at(h + 10, '', [1, 104, 0, 0], null),
  ]);
  const key = (r: { hour: number; realm: string; username: string }) => `${r.hour - h}|${r.realm}|${r.username}`;
  assert.deepEqual(Object.fromEntries(rows.map((r) => [key(r), [r.sessions, ...r.counters]])), {
    '0|r|': [2, 3, 60, 3, 240, 0, 0, 0, 0],
    '3600000|r|': [1, 1, 20, 1, 80, 0, 0, 0, 0],
    '0|r|intruder': [1, 32, 4024, 32, 3456, 0, 0, 0, 0],
    '0||': [1, 1, 104, 0, 0, 0, 0, 0, 0],
  });
});

function tempPipeline(
  t: { after(fn: () => void): void },
  source: 'log' | 'redis',
  now: () => number,
  checkpointMs = 100,
) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tm-unattributed-'));
  const registry = new Registry();
  const p = new UsagePipeline({
    dbFile: path.join(dir, 'usage.db'),
    source,
    checkpointMs,
    deleteGraceMs: 200,
    registry,
    log: pino({ level: 'silent' }),
    now,
    ownProbes: probes(),
  });
  p.open();
  p.setRun('run1');
  t.after(() => {
    p.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const db = () => p.store!.db;
  return {
    p,
    registry,
    rows: () =>
      db().prepare('SELECT allocation_id, kind, ended_at FROM allocations').all() as Record<string, unknown>[],
    hourly: () =>
      db().prepare('SELECT * FROM unattributed_hourly ORDER BY username').all() as Record<string, number | string>[],
    position: () => db().prepare('SELECT offset FROM log_position').pluck().get() as number | undefined,
    probeCount: async (by: string) =>
      Number(
        new RegExp(`^turn_monitor_stats_probe_sessions_total\\{by="${by}"\\} (\\d+)$`, 'm').exec(
          await registry.metrics(),
        )?.[1],
      ),
  };
}

/** turnserver's three closing lines of a session that never allocated. */
const closing = (id: string, user: string, c: string, remote: string, peer = 'rp=0, rb=0, sp=0, sb=0') => [
  `9: : session ${id}: usage: realm=<r>, username=<${user}>, ${c}`,
  `9: : session ${id}: peer usage: realm=<r>, username=<${user}>, ${peer}`,
  `9: : session ${id}: closed (2nd stage), user <${user}> realm <r> origin <>, local 127.0.0.1:3478, remote ${remote}, reason: allocation watchdog determined stale session state`,
];

test("log source: our probe's sessions are never stored, others go to their hour, relay traffic stays a row", async (t) => {
  const now = Date.UTC(2026, 0, 1, 10, 30);
  const { p, rows, hourly, probeCount } = tempPipeline(t, 'log', () => now);
  const lines = [
    ...closing('000000000000000001', '', 'rp=12, rb=240, sp=12, sb=960', PROBE),
    ...closing('000000000000000002', '', 'rp=1, rb=20, sp=1, sb=80', '127.0.0.1:50001'),
    ...closing('000000000000000003', 'intruder', 'rp=32, rb=4024, sp=32, sb=3456', '127.0.0.1:50002'),
    ...closing('000000000000000004', 'intruder', 'rp=2, rb=200, sp=2, sb=100', '127.0.0.1:50003'),
    ...closing('000000000000000005', '', 'rp=1, rb=104, sp=0, sb=0', '127.0.0.1:50004', 'rp=3, rb=300, sp=3, sb=300'),
  ];
  for (const [i, l] of lines.entries()) {
    p.ingest(parseLogLine(l, now)!);
    p.notePosition('f', i + 1);
  }
  p.flush(true);
  assert.deepEqual(rows(), [{ allocation_id: '000000000000000005', kind: 'unattributed', ended_at: now }]);
  const hour = Date.UTC(2026, 0, 1, 10);
  assert.deepEqual(
    hourly().map((r) => [r.hour, r.realm, r.username, r.sessions, r.rcvp, r.rcvb, r.sentp, r.sentb, r.peer_rcvb]),
    [
      [hour, 'r', '', 1, 1, 20, 1, 80, 0],
      [hour, 'r', 'intruder', 2, 34, 4224, 34, 3556, 0],
    ],
  );
  assert.equal(await probeCount('address'), 1);
  assert.equal(p.model.hasTimedWork(), false, 'closed at their `closed` line, not kept for the idle close');
});

test('redis source: a report with our signature ends the record at once, never stored; other sessions wait for their close', async (t) => {
  let now = Date.UTC(2026, 0, 1, 10, 30);
  const { p, rows, hourly, probeCount } = tempPipeline(t, 'redis', () => now);
  const ev = (id: string, user: string, kind: 'traffic' | 'traffic/peer', c: number[]): UsageEvent => ({
    source: 'redis',
    at: now,
    realm: 'r',
    username: user,
    allocationId: id,
    kind,
    rcvp: c[0],
    rcvb: c[1],
    sentp: c[2],
    sentb: c[3],
  });
  // The hot path: a handle for the first event, the peer report onto it.
  const handle = p.track(ev('1', '', 'traffic', [12, 240, 12, 960]))!;
  assert.ok(p.increment(handle, true, 0, 0, 0, 0, now));
  p.ingest(ev('2', 'intruder', 'traffic', [32, 4024, 32, 3456]));
  p.ingest(ev('2', 'intruder', 'traffic/peer', [0, 0, 0, 0]));
  p.flush(true);
  assert.equal(await probeCount('signature'), 1);
  assert.deepEqual(rows(), [], 'nothing stored while open');
  assert.deepEqual(hourly(), []);
  now += 121_000;
  p.flush(true); // the idle close
  assert.deepEqual(
    hourly().map((r) => [r.username, r.sessions, r.rcvb]),
    [['intruder', 1, 4024]],
  );
  assert.deepEqual(rows(), []);
});

test('log source: a checkpoint waits for the closing line of a session whose first lines were just read, then commits both together', async (t) => {
  const { p, hourly, position } = tempPipeline(t, 'log', Date.now, 100);
  p.scheduleFlushes();
  const [usage, peer, closed] = closing(
    '000000000000000007',
    'intruder',
    'rp=2, rb=200, sp=2, sb=100',
    '127.0.0.1:50009',
  );
  p.ingest(parseLogLine(usage, Date.now())!);
  p.notePosition('f', 10);
  await sleep(300); // past the checkpoint
  assert.equal(position(), undefined, 'the position is not committed between the lines of one close');
  p.ingest(parseLogLine(peer, Date.now())!);
  p.ingest(parseLogLine(closed, Date.now())!);
  p.notePosition('f', 30);
  await sleep(300);
  assert.equal(position(), 30);
  assert.deepEqual(
    hourly().map((r) => [r.username, r.sessions, r.rcvb]),
    [['intruder', 1, 200]],
  );
});

test('log source: a session whose closing line never comes holds the checkpoint at most about a second', async (t) => {
  const { p, position } = tempPipeline(t, 'log', Date.now, 100);
  p.scheduleFlushes();
  const [usage] = closing('000000000000000008', 'x', 'rp=1, rb=20, sp=1, sb=80', '127.0.0.1:50010');
  p.ingest(parseLogLine(usage, Date.now())!);
  p.notePosition('f', 10);
  await sleep(400);
  assert.equal(position(), undefined);
  await sleep(1200);
  assert.equal(position(), 10);
});

test('migration 4: the hourly table, and what earlier monitors left open of never-allocated sessions is closed', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tm-unattributed-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'usage.db');
  const old = new UsageStore(file);
  const open = (id: string, peerRcvb: number) =>
    old.db
      .prepare(
        `INSERT INTO allocations (run, allocation_id, kind, username, client_id, started_at, last_event_at,
           rcvp, rcvb, sentp, sentb, peer_rcvp, peer_rcvb, peer_sentp, peer_sentb, complete)
         VALUES ('run', ?, 'unattributed', '', '', 1, 5, 1, 20, 1, 80, 0, ?, 0, 0, 0)`,
      )
      .run(id, peerRcvb);
  open('1', 0);
  open('2', 300);
  old.db.exec('DROP TABLE unattributed_hourly');
  old.db.pragma('user_version = 3');
  old.close();
  const store = new UsageStore(file);
  t.after(() => store.close());
  assert.equal(store.db.pragma('user_version', { simple: true }), 4);
  assert.deepEqual(store.db.prepare('SELECT allocation_id, ended_at, end_reason FROM allocations ORDER BY 1').all(), [
    { allocation_id: '1', ended_at: 5, end_reason: 'monitor-restart' },
    { allocation_id: '2', ended_at: null, end_reason: null },
  ]);
  // Sums add up across writes (and realm '' when there is none).
  const row = { hour: 0, realm: '', username: 'u', sessions: 1, counters: [1, 2, 3, 4, 5, 6, 7, 8] };
  store.write([], null, [row]);
  store.write([], null, [row, { ...row, username: 'v' }]);
  assert.deepEqual(
    store.db.prepare(`SELECT sessions, rcvp, peer_sentb FROM unattributed_hourly WHERE username = 'u'`).get(),
    { sessions: 2, rcvp: 2, peer_sentb: 16 },
  );
});

test('the hourly outbox: a change marks its row in the same transaction; an ack clears only the version sent', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tm-unattributed-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'usage.db');
  const store = new UsageStore(file);
  const row = { hour: 3_600_000, realm: 'r', username: '', sessions: 1, counters: [1, 20, 1, 80, 0, 0, 0, 0] };
  store.write([], null, [row]); // before the export was on: marked when the outbox is created
  const outbox = new Outbox(file);
  t.after(() => {
    outbox.close();
    store.close();
  });
  let marked = outbox.takeHourly(10);
  assert.deepEqual(marked, [
    { hour: 3_600_000, realm: 'r', username: '', sessions: 1, counters: row.counters, version: 1 },
  ]);
  store.write([], null, [row, { ...row, username: 'intruder' }]);
  assert.equal(outbox.backlog(), 2);
  assert.equal(outbox.ackHourly(marked), 0, 'changed since it was read: stays marked');
  marked = outbox.takeHourly(10);
  assert.deepEqual(
    marked.map((m) => [m.username, m.sessions, m.version]),
    [
      ['', 2, 2],
      ['intruder', 1, 1],
    ],
  );
  assert.equal(outbox.ackHourly(marked), 2);
  assert.equal(outbox.backlog(), 0);
  assert.equal(outbox.oldestMarkedAt(), null);
  const sql = hourlyUpsertSql(2);
  assert.equal((sql.match(/\$\d+/g) ?? []).length, 2 * hourlyUpsertColumns.length);
  assert.match(
    sql,
    /ON CONFLICT \(host_id, hour, realm, username\) DO UPDATE SET sessions = EXCLUDED\.sessions, rcvp = EXCLUDED\.rcvp/,
  );
});

test('the prober sends every probe from one socket and knows its address, also after close()', async (t) => {
  // A Binding responder standing in for turnserver.
  const server = dgram.createSocket('udp4');
  const seen = new Set<number>();
  server.on('message', (msg, from) => {
    seen.add(from.port);
    const answer = Buffer.from(msg);
    answer.writeUInt16BE(0x0101, 0);
    server.send(answer, from.port, from.address);
  });
  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const prober = new StunProber('127.0.0.1', server.address().port);
  t.after(() => prober.close());
  assert.equal(prober.running(), false);
  for (let i = 0; i < 3; i++) assert.equal(await prober.probe(500), true);
  assert.equal(seen.size, 1, 'one local port for every probe');
  const from = prober.address!;
  assert.equal(from, `127.0.0.1:${[...seen][0]}`);
  assert.ok(prober.isOwnAddress(from));
  assert.equal(prober.isOwnAddress('127.0.0.1:1'), false);
  assert.ok(prober.running());
  prober.noteAddress('[::1]:5000');
  assert.ok(prober.isOwnAddress('::1:5000') && prober.isOwnAddress('[::1]:5000'));
  prober.close();
  assert.equal(await prober.probe(100), false, 'closed: no more probes');
  assert.ok(prober.isOwnAddress(from), 'its address stays known for sessions reported later');
  const silent = new StunProber('127.0.0.1', 9); // nothing answers on the discard port
  t.after(() => silent.close());
  assert.equal(await silent.probe(100), false);
});
