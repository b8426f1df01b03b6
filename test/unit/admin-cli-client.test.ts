import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { pino } from 'pino';
import { AdminUnavailableError, CliClient } from '../../src/admin/cli-client.js';
import { waitUntil } from '../../src/process/wait.js';

/** A stand-in for coturn's CLI speaking its protocol (banner, password, prompt); `wedged` stops answering commands. */
async function fakeCli(password: string) {
  const state = { wedged: false, sockets: new Set<net.Socket>(), logins: 0 };
  const server = net.createServer((s) => {
    state.sockets.add(s);
    s.on('close', () => state.sockets.delete(s));
    let authed = false;
    s.setEncoding('utf8');
    s.write("TURN Server\r\nCoturn-4.6.1 'Gorst'\r\n\r\nType '?' for help\r\nEnter password: \r\n");
    s.on('data', (d: string) => {
      for (const line of d.split('\r\n').filter(Boolean)) {
        if (!authed) {
          authed = line === password;
          if (authed) state.logins++;
          s.write(authed ? '> ' : 'Enter password: \r\n');
        } else if (!state.wedged) s.write(line === 'ps' ? '\r\n  Total sessions: 0\r\n\r\n> ' : '> ');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    state,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of state.sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const quiet = pino({ level: 'silent' });

test('login, one command at a time, a wedged CLI fails within the deadline and is reconnected', async () => {
  const cli = await fakeCli('pw-1');
  const results: string[] = [];
  const client = new CliClient({
    host: '127.0.0.1',
    port: cli.port,
    password: () => 'pw-1',
    logger: quiet,
    deadlineMs: 300,
    onResult: (c, r) => results.push(`${c}:${r}`),
  });
  try {
    client.start();
    client.resume();
    await waitUntil('connected', () => client.status === 'connected', 2000);
    const answers = await Promise.all([client.command('ps'), client.command('cs 1'), client.command('ps')]);
    assert.deepEqual(answers, ['\r\n  Total sessions: 0\r\n\r\n', '', '\r\n  Total sessions: 0\r\n\r\n']);
    await assert.rejects(client.command('a\r\nb'), /single line/);

    cli.state.wedged = true;
    const t0 = Date.now();
    await assert.rejects(
      client.command('ps'),
      (err: Error) => err instanceof AdminUnavailableError && /not answered within 300 ms/.test(err.message),
    );
    assert.ok(Date.now() - t0 < 600);
    cli.state.wedged = false;
    await waitUntil('logged in again', () => cli.state.logins === 2 && client.status === 'connected', 3000);
    assert.equal(await client.command('cs 2'), '');
    assert.ok(results.includes('ps:ok') && results.includes('ps:unavailable'));
  } finally {
    client.stop();
    await cli.close();
  }
});

test('paused (turnserver down): commands fail by their deadline; a wrong password never logs in; stop rejects what waits', async () => {
  const cli = await fakeCli('right');
  const client = new CliClient({
    host: '127.0.0.1',
    port: cli.port,
    password: () => 'wrong',
    logger: quiet,
    deadlineMs: 200,
  });
  try {
    client.start();
    await assert.rejects(client.command('ps'), AdminUnavailableError);
    client.resume();
    await waitUntil('down after repeated refusals', () => client.status === 'down', 5000);
    assert.equal(cli.state.logins, 0);
    const waiting = client.command('ps', { deadlineMs: 10_000 });
    client.stop();
    await assert.rejects(waiting, /stopped/);
  } finally {
    client.stop();
    await cli.close();
  }
});

test('the rendered cli lines: loopback only, a fresh 192-bit password for every turnserver start', async () => {
  const { Admin } = await import('../../src/admin/admin.js');
  const { Registry } = await import('prom-client');
  const { buildConfig } = await import('../../src/config/load.js');
  const { EventEmitter } = await import('node:events');
  const admin = new Admin({
    config: buildConfig({ turnserver: { cliPort: 5766 } }, '/x'),
    logger: quiet,
    registry: new Registry(),
    turnserver: new EventEmitter(),
  });
  const first = admin.turnConfLines();
  const second = admin.turnConfLines();
  assert.deepEqual(first.slice(0, 2), ['cli-ip=127.0.0.1', 'cli-port=5766']);
  const pw = (lines: string[]) => /^cli-password=([0-9a-f]{48})$/.exec(lines[2])?.[1];
  assert.ok(pw(first) && pw(second) && pw(first) !== pw(second));
  assert.ok(first.includes('cli-max-output-sessions=1000000'), 'every session listed, not 256');
  assert.equal(admin.status, 'down');
});
