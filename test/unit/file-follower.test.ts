import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FileFollower, type FilePosition } from '../../src/process/file-follower.js';
import { waitUntil } from '../../src/process/wait.js';

function setup() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'follower-'));
  const file = path.join(dir, 'x.log');
  const lines: string[] = [];
  let last: FilePosition | null = null;
  const make = (opts: { maxBytes?: number; reopen?: () => void } = {}) =>
    new FileFollower({ path: file, pollMs: 5, ...opts, onLine: (l, p) => (lines.push(l), (last = p)) });
  return { dir, file, lines, last: () => last, make, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('file follower: starts at the end, whole lines only, in order, with the position after each', async () => {
  const s = setup();
  writeFileSync(s.file, 'old line\n');
  const f = s.make();
  f.start();
  appendFileSync(s.file, 'a\nb\npart');
  await waitUntil('two lines', () => s.lines.length === 2);
  assert.deepEqual(s.lines, ['a', 'b']);
  assert.equal(s.last()!.offset, 'old line\na\nb\n'.length);
  assert.equal(f.position.offset, 'old line\na\nb\n'.length, 'a partial line is not passed');
  appendFileSync(s.file, 'ial\n');
  await waitUntil('third', () => s.lines.length === 3);
  assert.equal(s.lines[2], 'partial');
  f.stop();
  s.done();
});

test('file follower: size rotation (rename to .1 + reopen) and a rotation by someone else lose and double nothing', async () => {
  const s = setup();
  writeFileSync(s.file, '');
  // The "writer" reopens its path on request, as turnserver does on SIGHUP.
  let reopenAsked = 0;
  const f = s.make({ maxBytes: 100, reopen: () => reopenAsked++ });
  f.start();
  let writing = s.file;
  const expected: string[] = [];
  for (let i = 0; i < 60; i++) {
    const line = `line ${i} ${'x'.repeat(10)}`;
    expected.push(line);
    appendFileSync(writing, `${line}\n`);
    if (reopenAsked > 0 && writing === s.file && !statSafe(s.file)) {
      appendFileSync(`${s.file}.1`, 'late line to the old file\n');
      expected.push('late line to the old file');
      writing = s.file; // reopen: a new file at the path
      reopenAsked = 0;
    }
    await new Promise((r) => setImmediate(r));
    if (i % 5 === 0) await waitUntil('caught up', () => s.lines.length === expected.length);
  }
  await waitUntil('all', () => s.lines.length === expected.length);
  assert.deepEqual(s.lines, expected);
  // Someone else's rotation: rename away, new file.
  renameSync(s.file, `${s.file}.1`);
  appendFileSync(`${s.file}.1`, 'tail of old\n');
  appendFileSync(s.file, 'head of new\n');
  await waitUntil('both', () => s.lines.length === expected.length + 2);
  assert.deepEqual(s.lines.slice(-2), ['tail of old', 'head of new']);
  f.stop();
  s.done();
});

function statSafe(p: string) {
  try {
    return statSync(p);
  } catch {
    return null;
  }
}

test('file follower: resumes at a committed position, also in the rotated .1 file', async () => {
  const s = setup();
  writeFileSync(s.file, 'one\ntwo\n');
  let f = s.make();
  f.start(null);
  appendFileSync(s.file, 'three\n');
  await waitUntil('three', () => s.lines.length === 1);
  const committed = s.last()!;
  f.stop();
  appendFileSync(s.file, 'four\n');
  renameSync(s.file, `${s.file}.1`);
  appendFileSync(s.file, 'five\n');
  s.lines.length = 0;
  f = s.make();
  f.start(committed);
  await waitUntil('four and five', () => s.lines.length === 2);
  assert.deepEqual(s.lines, ['four', 'five']);
  f.stop();
  // A position naming neither file: from the start of the current file when asked to.
  s.lines.length = 0;
  f = s.make();
  f.start({ file: '0:0', offset: 3 }, true);
  await waitUntil('five again', () => s.lines.length === 1);
  assert.deepEqual(s.lines, ['five']);
  f.stop();
  s.done();
});
