import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { harnessTest, waitExit, type Harness } from '../harness/harness.js';
import { PORT_LOCKS_ENV, reserve } from '../../src/process/port-reservations.js';
import { freePortRange } from '../../src/process/ports.js';
import { waitUntil } from '../../src/process/wait.js';

const MODULE = fileURLToPath(new URL('../../src/process/port-reservations.ts', import.meta.url));

/** Another process that reserves `names` in `dir`, says so, then lives until killed (or exits, with `exit`). */
async function holder(h: Harness, dir: string, names: string[], exit = false) {
  const code = `
    const { reserve } = await import(${JSON.stringify(MODULE)});
    const got = ${JSON.stringify(names)}.map((n) => reserve(n));
    console.log('reserved ' + got.join(','));
    ${exit ? '' : 'setInterval(() => {}, 60_000);'}`;
  const t = h.spawn('holder', process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    env: { ...process.env, [PORT_LOCKS_ENV]: dir },
  });
  await waitUntil('the holder to reserve', () => t.output().includes('reserved'), 20_000);
  return t;
}

/** Runs `body` with this process's reservations in `dir` (this file's tests run one at a time). */
async function withLockDir<T>(dir: string, body: () => Promise<T>): Promise<T> {
  const before = process.env[PORT_LOCKS_ENV];
  process.env[PORT_LOCKS_ENV] = dir;
  try {
    return await body();
  } finally {
    process.env[PORT_LOCKS_ENV] = before;
  }
}

harnessTest("a port another live process reserved is not handed out; a killed owner's is taken over", async (h) => {
  const dir = path.join(h.dir, 'locks');
  const t = await holder(h, dir, ['port-1', 'port-2']);
  assert.match(t.output(), /reserved true,true/);
  await withLockDir(dir, async () => {
    assert.equal(reserve('port-1'), false, 'held by a live process');
    assert.equal(reserve('port-3'), true, 'nobody holds it');
    assert.equal(reserve('port-3'), false, 'this process holds it already');
    process.kill(t.pid, 'SIGKILL');
    await waitExit(t);
    assert.ok(existsSync(path.join(dir, 'port-1')), 'a killed owner leaves its reservation behind');
    assert.equal(reserve('port-1'), true, 'and it is taken over');
  });
});

harnessTest('a process that exits gives its reservations back', async (h) => {
  const dir = path.join(h.dir, 'locks');
  const t = await holder(h, dir, ['port-7'], true);
  assert.equal((await waitExit(t)).code, 0);
  assert.equal(existsSync(path.join(dir, 'port-7')), false);
});

harnessTest('relay ranges skip the blocks another process holds', async (h) => {
  const dir = path.join(h.dir, 'locks');
  // Every block of the relay span but two neighbours (range-40, range-41) is held elsewhere.
  const held = Array.from({ length: 150 }, (_, b) => `range-${b}`).filter((n) => n !== 'range-40' && n !== 'range-41');
  await holder(h, dir, held);
  await withLockDir(dir, async () => {
    assert.deepEqual(await freePortRange(200), [37000, 37199]);
    // Once every block is held, a long run's fallback takes its own blocks again, never another's.
    assert.deepEqual(await freePortRange(100), [37000, 37099]);
    await assert.rejects(freePortRange(300), /no 300 consecutive free UDP ports/);
  });
});
