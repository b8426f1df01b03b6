import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makePair } from '../harness/certs.js';
import { exportConfig, pgCount, publishAllocations } from '../harness/export.js';
import { harnessTest } from '../harness/harness.js';
import { startMonitor } from '../harness/monitor.js';
import { PG_PASSWORD, startPostgres } from '../harness/postgres.js';
import { monitorRedisPort, publisher } from '../harness/statsdb.js';
import { waitUntil } from '../../src/process/wait.js';

harnessTest(
  'PostgreSQL with sslmode=verify-full: rows ship over verified TLS (url from urlFile); a wrong root certificate is an export health error naming sslrootcert, never the password',
  async (h) => {
    const certs = path.join(h.dir, 'pg-certs');
    const server = makePair(certs, 'server', { cn: 'pg.test', san: 'IP:127.0.0.1' });
    const other = makePair(certs, 'other', { cn: 'pg.test', san: 'IP:127.0.0.1' });
    // PostgreSQL reads its key only when its own user owns it with mode 0600.
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
    for (const f of [server.cert, server.key]) chownSync(f, id('-u'), id('-g'));
    chmodSync(server.key, 0o600);
    const pg = await startPostgres(h, { ssl: 'on', ssl_cert_file: server.cert, ssl_key_file: server.key });

    const verified = (root: string) => `${pg.url}?sslmode=verify-full&sslrootcert=${encodeURIComponent(root)}`;
    const bad = await startMonitor(h, exportConfig(h, { url: verified(other.cert) }, 'host-bad'), {
      configFile: path.join(h.dir, 'bad.json'),
    });
    let lastError = '';
    await waitUntil(
      'the export reports the certificate',
      async () => {
        lastError = (await bad.health()).body.export.lastError ?? '';
        return lastError !== '';
      },
      10_000,
    );
    assert.match(lastError, new RegExp(`does not verify against sslrootcert ${other.cert}`), lastError);
    assert.ok(!lastError.includes(PG_PASSWORD) && !bad.output().includes(PG_PASSWORD), 'never the password');
    await bad.stop();

    const urlFile = path.join(h.dir, 'pg-url');
    writeFileSync(urlFile, `${verified(server.cert)}\n`, { mode: 0o600 });
    const cfg = exportConfig(h, pg, 'host-tls');
    const m = await startMonitor(h, {
      ...cfg,
      export: { postgres: { hostId: 'host-tls', intervalSec: 0.3, urlFile } },
    });
    const pub = await publisher(h, await monitorRedisPort(m));
    await publishAllocations(pub, 20, 0);
    await waitUntil('the rows shipped over TLS', async () => (await pgCount(pg, 'host-tls')) >= 20, 15_000);
    const ssl = await pg.query<{ ssl: boolean }>(
      `SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.application_name LIKE 'turn-monitor%'`,
    );
    assert.ok(ssl.length > 0 && ssl.every((r) => r.ssl), `the monitor's connection uses TLS: ${JSON.stringify(ssl)}`);
    assert.equal((await m.health()).body.export.lastError, null);
    assert.ok(!m.output().includes(PG_PASSWORD));
  },
  { timeout: 60_000 },
);
