import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { chmodSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { harnessTest, waitExit } from '../harness/harness.js';
import { monitorBin, startMonitor, testConfig } from '../harness/monitor.js';
import { processesMentioning } from '../../src/process/pids.js';

async function holdPort(port: number): Promise<() => Promise<void>> {
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(port, '127.0.0.1', () => resolve()));
  const tcp = net.createServer();
  await new Promise<void>((resolve) => tcp.listen(port, '127.0.0.1', () => resolve()));
  return async () => {
    udp.close();
    await new Promise((r) => tcp.close(r));
  };
}

harnessTest('listening port taken: a clear start-up error well under 60 s, nothing left running', async (h) => {
  const config = await testConfig(h);
  const port = (config.turnserver as { listeningPort: number }).listeningPort;
  const release = await holdPort(port);
  h.onCleanup(release);
  const started = Date.now();
  const m = await startMonitor(h, {}, { rawConfig: config, waitReady: false });
  const exit = await waitExit(m.tracked, 20_000);
  const took = Date.now() - started;
  assert.equal(exit.code, 1);
  assert.match(m.output(), /cannot bind its listening address 127\.0\.0\.1:\d+/);
  assert.ok(took < 15_000, `failed after ${took} ms`);
  assert.equal(
    m.logs.filter((e) => e.event === 'spawn' && e.component === 'supervisor').length,
    1,
    'start-up failure is not restart-looped',
  );
  assert.deepEqual(processesMentioning(path.join(m.dataDir, 'turnserver.conf')), []);
});

harnessTest('a turnserver that never answers fails start-up after readyTimeoutMs', async (h) => {
  const fake = path.join(h.dir, 'silent-turnserver');
  writeFileSync(fake, '#!/bin/sh\nexec sleep 30\n');
  chmodSync(fake, 0o755);
  const m = await startMonitor(h, { turnserver: { bin: fake, readyTimeoutMs: 1000 } }, { waitReady: false });
  const exit = await waitExit(m.tracked, 15_000);
  assert.equal(exit.code, 1);
  assert.match(m.output(), /did not answer within 1000 ms/);
});

harnessTest('a missing turnserver binary is a clear start-up error', async (h) => {
  const m = await startMonitor(h, { turnserver: { bin: '/nonexistent/turnserver' } }, { waitReady: false });
  const exit = await waitExit(m.tracked, 15_000);
  assert.equal(exit.code, 1);
  assert.match(m.output(), /cannot spawn \/nonexistent\/turnserver/);
});

harnessTest('HTTP port in use: start-up error, turnserver stopped again', async (h) => {
  const config = await testConfig(h);
  const httpPort = (config.http as { port: number }).port;
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(httpPort, '127.0.0.1', () => resolve()));
  h.onCleanup(() => new Promise((r) => server.close(() => r())));
  const m = await startMonitor(h, {}, { rawConfig: config, waitReady: false });
  const exit = await waitExit(m.tracked, 15_000);
  assert.equal(exit.code, 1);
  assert.match(m.output(), /cannot listen on http 127\.0\.0\.1:\d+: EADDRINUSE/);
  assert.deepEqual(processesMentioning(path.join(m.dataDir, 'turnserver.conf')), []);
});

const badConfigs: [string, Record<string, unknown>, RegExp][] = [
  ['unknown top-level key', { dataDr: '/tmp/x' }, /config key "dataDr": unknown key/],
  ['unknown nested key', { turnserver: { listenPort: 1 } }, /config key "turnserver\.listenPort": unknown key/],
  ['wrong type', { turnserver: { listeningPort: 'x' } }, /config key "turnserver\.listeningPort"/],
  ['port out of range', { http: { port: 70000 } }, /config key "http\.port"/],
  [
    'bad IP',
    { turnserver: { externalIp: 'not-an-ip' } },
    /config key "turnserver\.externalIp": must be an IPv4 or IPv6 address/,
  ],
  ['bad enum', { credentials: { mode: 'ldap' } }, /config key "credentials\.mode"/],
  [
    'rotate > validity',
    { credentials: { rotateIntervalSec: 10, validitySec: 5 } },
    /config key "credentials\.rotateIntervalSec"/,
  ],
  ['public bind without API keys', { http: { host: '0.0.0.0' } }, /config key "http\.apiKeys"/],
];

harnessTest('bad config: exit 2 naming the key, nothing spawned', async (h) => {
  for (const [label, raw, expected] of badConfigs) {
    const m = await startMonitor(h, {}, { rawConfig: { dataDir: path.join(h.dir, 'data'), ...raw }, waitReady: false });
    const exit = await waitExit(m.tracked, 10_000);
    assert.equal(exit.code, 2, `${label}: exit code`);
    assert.match(m.output(), expected, label);
    assert.equal(
      m.logs.some((e) => e.event === 'spawn'),
      false,
      `${label}: nothing spawned`,
    );
  }
  const notJson = path.join(h.dir, 'broken.json');
  writeFileSync(notJson, '{"http": {"apiKeys": ["super-secret-api-key-1234"]');
  const t = h.spawn('monitor', process.execPath, [monitorBin, 'start', '--config', notJson]);
  const exit = await waitExit(t, 10_000);
  assert.equal(exit.code, 2);
  assert.match(t.output(), /is not valid JSON/);
  assert.doesNotMatch(t.output(), /super-secret/, 'no secret echoed from a broken file');
});
