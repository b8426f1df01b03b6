import assert from 'node:assert/strict';
import { once } from 'node:events';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import { linkPair, makePair, pem } from '../harness/certs.js';
import { harnessTest, waitExit, type Harness } from '../harness/harness.js';
import { monitorBin, startMonitor } from '../harness/monitor.js';

const KEY = 'https-api-key-0123456789';
const SAN = 'DNS:api.test,IP:127.0.0.1';

const curl = (h: Harness, args: string[]) =>
  h.run('curl', 'curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', ...args]);

/** The certificate a new TLS connection to the API is served (read, not verified). */
async function servedFingerprint(port: number): Promise<string> {
  const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'api.test' });
  try {
    await once(s, 'secureConnect');
    return s.getPeerCertificate().fingerprint256;
  } finally {
    s.destroy();
  }
}

harnessTest(
  'HTTPS: curl with --cacert succeeds, without fails; a renewal is served to the next connection while a keep-alive connection (and a request half sent) go on; the CLI speaks HTTPS',
  async (h) => {
    const a = makePair(path.join(h.dir, 'archive'), 'a', { cn: 'api.test', san: SAN });
    const live = linkPair(path.join(h.dir, 'live'), a);
    const m = await startMonitor(h, { http: { apiKeys: [KEY], tls: { cert: live.cert, key: live.key } } });
    const port = (m.config.http as { port: number }).port;
    const base = `https://127.0.0.1:${port}`;

    const ok = await curl(h, ['--cacert', a.cert, `${base}/health`]);
    assert.equal(ok.code, 0, ok.output);
    assert.equal(ok.output, '200');
    const untrusted = await curl(h, [`${base}/health`]);
    assert.equal(untrusted.code, 60, `without --cacert: ${untrusted.output}`);
    assert.match(m.logs.find((e) => e.event === 'listening' && e.component === 'http')?.msg ?? '', /https/);

    // A keep-alive connection, and a request whose headers are half sent, both opened on the old pair.
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pem(a.cert) });
    h.onCleanup(async () => agent.destroy());
    const get = (p: string) =>
      new Promise<{ status: number; socket: tls.TLSSocket; fingerprint: string }>((resolve, reject) => {
        https
          .get(
            `${base}${p}`,
            { agent, ca: pem(a.cert), servername: 'api.test', headers: { authorization: `Bearer ${KEY}` } },
            (res) => {
              // Taken now: a keep-alive socket leaves the response once it ends.
              const socket = res.socket as tls.TLSSocket;
              const fingerprint = socket.getPeerCertificate().fingerprint256;
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode!, socket, fingerprint }));
            },
          )
          .on('error', reject);
      });
    const first = await get('/turncredential');
    assert.equal(first.status, 200);
    const half = tls.connect({ host: '127.0.0.1', port, ca: pem(a.cert), servername: 'api.test' });
    h.onCleanup(async () => void half.destroy());
    await once(half, 'secureConnect');
    half.write('GET /health HTTP/1.1\r\nHost: api.test\r\n');

    const b = makePair(path.join(h.dir, 'archive'), 'b', { cn: 'api.test', san: SAN });
    const from = m.logs.length;
    linkPair(path.join(h.dir, 'live'), b);
    const reloaded = await m.waitForLog((e) => e.event === 'api-certificate-reloaded', { from, timeoutMs: 5000 });
    assert.equal(reloaded.fingerprint, b.fingerprint);
    assert.equal(await servedFingerprint(port), b.fingerprint, 'the next connection');

    const second = await get('/turncredential');
    assert.equal(second.status, 200);
    assert.equal(second.socket, first.socket, 'the same keep-alive connection');
    assert.equal(first.fingerprint, a.fingerprint);
    assert.equal(second.fingerprint, a.fingerprint, 'still on the old pair');
    let answer = '';
    half.on('data', (d: Buffer) => (answer += d.toString()));
    half.end('Connection: close\r\n\r\n');
    await once(half, 'close');
    assert.match(answer, /^HTTP\/1\.1 200 /, 'the request half sent before the renewal is answered');

    assert.equal((await curl(h, ['--cacert', b.cert, `${base}/health`])).output, '200');
    assert.equal((await curl(h, ['--cacert', a.cert, `${base}/health`])).code, 60, 'the old pair is no longer served');
    // The CLI reads the config's certificate and speaks HTTPS to 127.0.0.1.
    const cli = await h.run('cli', process.execPath, [monitorBin, 'credential', '--json', '--config', m.configFile]);
    assert.equal(cli.code, 0, cli.output);
  },
  { timeout: 45_000 },
);

harnessTest(
  'mutual TLS: without a client certificate signed by http.tls.ca the handshake fails; with one the key is served; a bad pair is exit 2 naming the file',
  async (h) => {
    const server = makePair(path.join(h.dir, 'certs'), 'server', { cn: 'api.test', san: SAN });
    const client = makePair(path.join(h.dir, 'certs'), 'client', { cn: 'ops-client' });
    const stranger = makePair(path.join(h.dir, 'certs'), 'stranger', { cn: 'ops-client' });

    // A key that does not belong to the certificate: exit 2 before anything starts, naming the file.
    const bad = await startMonitor(
      h,
      { http: { tls: { cert: server.cert, key: client.key } } },
      { waitReady: false, configFile: path.join(h.dir, 'bad.json') },
    );
    const exit = await waitExit(bad.tracked, 15_000);
    assert.equal(exit.code, 2, bad.output());
    assert.ok(bad.output().includes(`http.tls: TLS ${client.key}: the private key does not match`), bad.output());

    const m = await startMonitor(h, {
      http: {
        apiKeys: [{ name: 'ops', key: KEY, scopes: ['credentials', 'usage'], requireClientCert: true }],
        tls: { cert: server.cert, key: server.key, ca: client.cert },
      },
    });
    const base = `https://127.0.0.1:${(m.config.http as { port: number }).port}`;
    const auth = ['-H', `Authorization: Bearer ${KEY}`];
    const none = await curl(h, ['--cacert', server.cert, ...auth, `${base}/turncredential`]);
    assert.notEqual(none.code, 0, `no client certificate: refused (${none.output})`);
    const foreign = await curl(h, [
      ...['--cacert', server.cert, '--cert', stranger.cert, '--key', stranger.key, ...auth],
      `${base}/turncredential`,
    ]);
    assert.notEqual(foreign.code, 0, `a certificate not signed by the CA: refused (${foreign.output})`);
    const good = await curl(h, [
      ...['--cacert', server.cert, '--cert', client.cert, '--key', client.key, ...auth],
      `${base}/turncredential`,
    ]);
    assert.equal(good.output, '200', `with the client certificate: ${good.output}`);
    const cli = await h.run('cli', process.execPath, [monitorBin, 'credential', '--config', m.configFile], {
      env: { ...process.env, TURN_MONITOR_CLIENT_CERT: client.cert, TURN_MONITOR_CLIENT_KEY: client.key },
    });
    assert.equal(cli.code, 0, cli.output);
  },
  { timeout: 45_000 },
);
