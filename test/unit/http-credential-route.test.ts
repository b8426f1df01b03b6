import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { clientKey, credentialHandler } from '../../src/http/routes/credentials.js';
import type { CredentialResponse } from '../../src/credentials/credentials.js';
import { apiKeyCheck, apiKeyMiddleware, sameString } from '../../src/http/auth.js';

test('rate limit key: the client address; IPv4-mapped as IPv4, IPv6 by /56 (as express-rate-limit)', () => {
  assert.equal(clientKey('127.0.0.1'), '127.0.0.1');
  assert.equal(clientKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(clientKey('2001:db8:aa:bb01::1'), clientKey('2001:db8:aa:bbff:1:2:3:4'));
  assert.notEqual(clientKey('2001:db8:aa:bb01::1'), clientKey('2001:db8:aa:cc01::1'));
  assert.equal(clientKey(undefined), '');
});

test('constant-time string equality', () => {
  assert.equal(sameString('abcdef', 'abcdef'), true);
  for (const other of ['abcdeg', 'abcde', 'abcdefg', '', 'ABCDEF', 'abcde\0'])
    assert.equal(sameString(other, 'abcdef'), false, other);
  assert.equal(sameString('', ''), true);
});

test("API key check: Bearer or ?key=; a connection keeps its accepted key, never another client's", () => {
  const check = apiKeyCheck(['first-key-0123456789', 'second-key-0123456789']);
  const [a, b] = [{}, {}];
  assert.equal(check(undefined, undefined, a), false);
  assert.equal(check('Bearer first-key-0123456789', undefined, a), true);
  assert.equal(check(undefined, 'second-key-0123456789', a), true, 'another valid key on the same connection');
  assert.equal(check('Bearer first-key-01234567890', undefined, a), false, 'a wrong key after an accepted one');
  assert.equal(check('Bearer first-key-0123456789', undefined, a), true);
  assert.equal(check('Bearer wrong', undefined, b), false);
  assert.equal(check('Bearer first-key-0123456789', ['x'], b), true, 'the header wins over ?key=');
  assert.equal(check('Basic Zm9vOmJhcg==', 'first-key-0123456789'), true, 'not a Bearer header: ?key= is used');
  assert.equal(apiKeyCheck([])(undefined, undefined), true, 'no keys: open (loopback only)');
});

const KEY = 'unit-api-key-0123456789';
const credential = (user: string | null): CredentialResponse => ({
  type: 'result',
  code: 'ok',
  userid: user ?? 'u',
  username: user ?? 'u',
  password: 'p',
  expired_time: 1,
  ttl: 1,
  uris: [],
  iceServers: [],
});

async function serve(issue: (user: string | null) => CredentialResponse | null, limitPerMinute = 600) {
  const issueJson = (user: string | null) => {
    const c = issue(user);
    return c && JSON.stringify(c);
  };
  const handler = credentialHandler({ issueJson }, { authorized: apiKeyCheck([KEY]), limitPerMinute });
  const server: Server = createServer(handler).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const get = async (path: string, headers: Record<string, string> = { authorization: `Bearer ${KEY}` }) => {
    const r = await fetch(base + path, { headers });
    return { status: r.status, headers: r.headers, body: await r.json() };
  };
  return { get, base, close: () => new Promise((r) => server.close(r)) };
}

test('credential fast path: key, user check, 503, headers and body as express gave them', async () => {
  let available = true;
  const users: (string | null)[] = [];
  const s = await serve((user) => (users.push(user), available ? credential(user) : null));
  try {
    const unauth = await s.get('/turncredential', {});
    assert.equal(unauth.status, 401);
    assert.equal(unauth.headers.get('www-authenticate'), 'Bearer');
    assert.deepEqual(unauth.body, { type: 'error', code: 'unauthorized', error: 'a valid API key is required' });
    assert.equal(unauth.headers.get('ratelimit'), null, 'refused keys are not counted');
    assert.equal((await s.get('/turncredential', { authorization: 'Bearer wrong-key-0123456789' })).status, 401);
    assert.equal((await s.get(`/turncredential?key=${KEY}&key=${KEY}`, {})).status, 401, 'a repeated key is not a key');

    const ok = await s.get('/turncredential?user=alice');
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.body, credential('alice'));
    assert.equal(ok.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(ok.headers.get('cache-control'), 'no-store');
    assert.equal(ok.headers.get('ratelimit-policy'), '600;w=60');
    assert.equal(ok.headers.get('ratelimit'), 'limit=600, remaining=599, reset=60');
    assert.equal((await s.get(`/turncredential?key=${KEY}`, {})).status, 200);
    assert.equal((await s.get('/turncredential', { authorization: `bearer   ${KEY} ` })).status, 200);

    for (const bad of ['a%25b', 'a/b', 'x'.repeat(65), '', 'a&user=b']) {
      const r = await s.get(`/turncredential?user=${bad}`);
      assert.equal(r.status, 400, bad);
      assert.deepEqual(r.body, {
        type: 'error',
        code: 'bad_user',
        error: 'user must be 1-64 characters of A-Z a-z 0-9 . _ -',
      });
    }
    assert.deepEqual(users, ['alice', null, null], 'a refused user never reaches issue()');
    available = false;
    const none = await s.get('/turncredential');
    assert.equal(none.status, 503);
    assert.deepEqual(none.body, { type: 'error', code: 'unavailable', error: 'no valid credential: see /health' });
  } finally {
    await s.close();
  }
});

test('credential fast path: 429 with draft-7 headers and Retry-After once the limit is used', async () => {
  const s = await serve(credential, 2);
  try {
    assert.equal((await s.get('/turncredential')).status, 200);
    assert.equal((await s.get('/turncredential?user=%')).status, 400, 'a bad request counts');
    const refused = await s.get('/turncredential');
    assert.equal(refused.status, 429);
    assert.deepEqual(refused.body, { type: 'error', code: 'rate_limited', error: 'too many credential requests' });
    assert.equal(refused.headers.get('ratelimit'), 'limit=2, remaining=0, reset=60');
    assert.equal(refused.headers.get('retry-after'), '60');
    assert.equal(refused.headers.get('cache-control'), null);
    assert.equal(refused.headers.get('ratelimit-policy'), '2;w=60');
  } finally {
    await s.close();
  }
});

test('one 401: an express route behind requireApiKey answers exactly as the fast path', async () => {
  const express = (await import('express')).default;
  const app = express();
  app.post('/turncredential/rotate', apiKeyMiddleware(apiKeyCheck([KEY])), (_req, res) => void res.json({ ok: true }));
  const viaExpress: Server = createServer(app).listen(0, '127.0.0.1');
  await once(viaExpress, 'listening');
  const s = await serve(credential);
  try {
    const answer = async (r: Response) => ({
      status: r.status,
      body: await r.text(),
      type: r.headers.get('content-type'),
      length: r.headers.get('content-length'),
      auth: r.headers.get('www-authenticate'),
    });
    const fromExpress = await answer(
      await fetch(`http://127.0.0.1:${(viaExpress.address() as AddressInfo).port}/turncredential/rotate`, {
        method: 'POST',
      }),
    );
    const fromFastPath = await answer(await fetch(`${s.base}/turncredential`));
    assert.deepEqual(fromExpress, fromFastPath);
    assert.equal(fromFastPath.status, 401);
  } finally {
    await s.close();
    await new Promise((r) => viaExpress.close(r));
  }
});
