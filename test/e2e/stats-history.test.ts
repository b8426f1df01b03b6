import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { harnessTest } from '../harness/harness.js';
import { generateHistory } from '../harness/history.js';
import { cliToFile } from '../harness/cli.js';
import { startMonitor, testConfig } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';
import { STATS_API_KEY, statsConfig, STATS_USER as USER } from '../harness/statsdb.js';

const auth = { headers: { authorization: `Bearer ${STATS_API_KEY}` } };
const DAY = 86_400_000;

harnessTest(
  'a usage.db with 500,000 stored allocations: every page joins up while allocations are written, credentials answer throughout',
  async (h) => {
    // Credential requests every 50 ms are the probe here, not a client to limit.
    const config = await testConfig(h, {
      ...statsConfig,
      http: { ...statsConfig.http, rateLimitPerMinute: 1_000_000 },
    });
    const db = path.join(config.dataDir as string, 'usage.db');
    mkdirSync(path.dirname(db), { recursive: true });
    const stored = 500_000;
    generateHistory(db, { rows: stored, clients: 5000, endAt: Date.now() - 60_000, spanMs: 10 * DAY });
    const peer = await startPeer(h);
    const m = await startMonitor(h, {}, { rawConfig: config });

    // /turncredential every 50 ms while history is read: every request answered, none kept waiting.
    const waits: number[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const t0 = performance.now();
        const r = await m.get('/turncredential', auth);
        assert.equal(r.status, 200, `/turncredential: HTTP ${r.status}`);
        waits.push(performance.now() - t0);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    // New allocations are written while the pages are read.
    let relaying = true;
    const relay = (async () => {
      while (relaying) await runUclient(h, { turnPort: m.turnPort, peerPort: peer.port, ...USER, messages: 5 });
    })();
    // However the body ends, both loops end before the harness stops what they talk to.
    for (const loop of [relay, prober]) loop.catch(() => undefined);
    h.onCleanup(async () => {
      relaying = probing = false;
      await Promise.allSettled([relay, prober]);
    });

    const from = new Date(Date.now() - 11 * DAY).toISOString();
    const seen = new Set<string>();
    let last = '';
    let pages = 0;
    let query = `/usage?from=${from}&limit=10000`;
    for (;;) {
      const r = await m.get(query, auth);
      assert.equal(r.status, 200, `${query}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
      pages++;
      for (const row of r.body.rows as { run: string; allocationId: string; startedAt: string }[]) {
        assert.ok(row.startedAt >= last, `rows in order (${row.startedAt} after ${last})`);
        last = row.startedAt;
        const id = `${row.run}/${row.allocationId}`;
        assert.ok(!seen.has(id), `row ${id} served once`);
        seen.add(id);
      }
      if (r.body.cursor === null) {
        assert.equal(r.headers.get('link'), null);
        break;
      }
      assert.match(r.headers.get('link') ?? '', /^<\/usage\?cursor=[A-Za-z0-9_-]+&limit=10000>; rel="next"$/);
      query = `/usage?cursor=${r.body.cursor}&limit=10000`;
    }
    assert.equal([...seen].filter((id) => id.startsWith('generated/')).length, stored, 'every stored row');
    assert.ok(pages >= stored / 10_000, `${pages} pages`);

    // A client that goes away mid-page: its read is called off, the next query is served.
    const gone = new AbortController();
    const heavy = fetch(`${m.httpUrl}/usage?by=session&from=${from}&limit=10000`, { ...auth, signal: gone.signal });
    const res = await heavy;
    const reader = res.body!.getReader();
    await reader.read();
    gone.abort();
    await reader.read().catch(() => undefined);
    assert.equal((await m.get('/usage?limit=1', auth)).status, 200);
    assert.equal((await m.health()).body.stats.queries.inFlight, 0);

    // The CLI exports every session while the monitor runs.
    const out = path.join(h.dir, 'sessions.csv');
    const cli = cliToFile(h, ['usage', '--config', m.configFile, '--by', 'session', '--format', 'csv'], out);
    assert.equal((await cli.exited).code, 0, cli.output());
    assert.ok(statSync(out).size > 0);
    assert.match(readFileSync(out, 'utf8').slice(0, 200), /^realm,clientId,startedAt,endedAt,durationSec,allocations,/);

    relaying = false;
    probing = false;
    await Promise.all([relay, prober]);
    assert.ok(waits.length > 20, `${waits.length} credential requests`);
    const longest = Math.max(...waits);
    assert.ok(longest < 1000, `a credential request waited ${longest.toFixed(0)} ms`);
    assert.equal((await m.stop()).code, 0);
  },
  { timeout: 240_000 },
);

harnessTest('GET /usage refuses a bad page request with a 400 naming the parameter', async (h) => {
  const m = await startMonitor(h, statsConfig);
  const bad: [string, string][] = [
    ['?limit=0', 'limit'],
    ['?limit=10001', 'limit'],
    ['?limit=ten', 'limit'],
    ['?cursor=not-a-cursor', 'cursor'],
    ['?cursor=WyJ4Il0', 'cursor'],
    ['?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z', 'from'],
    ['?from=yesterday', 'from'],
    ['?by=nope', 'by'],
  ];
  for (const [query, parameter] of bad) {
    const r = await m.get(`/usage${query}`, auth);
    assert.equal(r.status, 400, query);
    assert.equal(r.body.parameter, parameter, query);
  }
  // A cursor only continues its own query.
  const ok = await m.get('/usage?limit=1&from=2026-01-01T00:00:00Z', auth);
  assert.equal(ok.status, 200);
  assert.equal(
    (await m.get('/usage?cursor=WyJhbGxvY2F0aW9uIixudWxsLG51bGwsbnVsbCxbMSwxXV0&by=user', auth)).status,
    400,
  );
  assert.equal((await m.stop()).code, 0);
});

harnessTest(
  '`turn-monitor usage --format table` over 1,000,000 stored allocations completes',
  async (h) => {
    const config = await testConfig(h, statsConfig);
    const db = path.join(config.dataDir as string, 'usage.db');
    mkdirSync(path.dirname(db), { recursive: true });
    generateHistory(db, { rows: 1_000_000, clients: 50_000, endAt: Date.now(), spanMs: 30 * DAY });
    const configFile = path.join(h.dir, 'config.json');
    writeFileSync(configFile, JSON.stringify(config));
    const out = path.join(h.dir, 'table.txt');
    const cli = cliToFile(h, ['usage', '--config', configFile, '--format', 'table'], out);
    assert.equal((await cli.exited).code, 0, cli.output());
    const text = readFileSync(out, 'utf8');
    let lines = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
    assert.equal(lines, 1_000_000 + 2, 'a header, a rule and every row');
    assert.match(text.slice(0, 300), /^allocationId\s+run\s+realm/);
  },
  { timeout: 180_000 },
);

harnessTest('a usage.db that is not a database stops the monitor with exit 2 naming the file', async (h) => {
  const config = await testConfig(h, statsConfig);
  const db = path.join(config.dataDir as string, 'usage.db');
  mkdirSync(path.dirname(db), { recursive: true });
  writeFileSync(db, 'this is not an SQLite database, it is a text file that was put here by mistake\n'.repeat(200));
  const m = await startMonitor(h, {}, { rawConfig: config, waitReady: false });
  const exit = await m.exited;
  assert.equal(exit.code, 2, m.output());
  assert.match(m.output(), new RegExp(`usage database ${db.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} cannot be opened`));
});
