import assert from 'node:assert/strict';
import {
  appendFileSync,
  closeSync,
  mkdtempSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
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
  const make = (opts: { maxBytes?: number; reopen?: () => void; pollMs?: number } = {}) =>
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

test('file follower: writes and a new file at the path are noticed by inotify, not by the (here hour-long) poll', async () => {
  const s = setup();
  writeFileSync(s.file, '');
  const f = s.make({ pollMs: 3_600_000 });
  f.start();
  appendFileSync(s.file, 'a\n');
  await waitUntil('a line from a write', () => s.lines.length === 1, 2000);
  renameSync(s.file, `${s.file}.1`);
  writeFileSync(s.file, 'b\n');
  await waitUntil('a line from the new file', () => s.lines.length === 2, 2000);
  assert.deepEqual(s.lines, ['a', 'b']);
  f.stop();
  s.done();
});

/** A writer holding its file open, as turnserver does: reopen() makes it open the path anew at its next write. */
function writer(file: string) {
  let fd = openSync(file, 'a');
  let reopen = false;
  return {
    reopen: () => void (reopen = true),
    get pending() {
      return reopen;
    },
    write(line: string, late?: string) {
      if (reopen) {
        if (late) writeSync(fd, `${late}\n`); // written to the old file after the rename
        closeSync(fd);
        fd = openSync(file, 'a');
        reopen = false;
      }
      writeSync(fd, `${line}\n`);
    },
    close: () => closeSync(fd),
  };
}

test('file follower: its own size rotation (rename to .1 + reopen) loses and doubles nothing, late lines to the old file included', async () => {
  const s = setup();
  const w = writer(s.file);
  const f = s.make({ maxBytes: 100, reopen: () => w.reopen() });
  f.start();
  const expected: string[] = [];
  let rotations = 0;
  for (let i = 0; i < 60; i++) {
    const line = `line ${i} ${'x'.repeat(10)}`;
    if (w.pending) {
      rotations++;
      expected.push(`late ${i}`);
    }
    expected.push(line);
    w.write(line, `late ${i}`);
    await waitUntil('caught up', () => s.lines.length === expected.length);
  }
  assert.ok(rotations >= 5, `${rotations} rotations`);
  assert.deepEqual(s.lines, expected);
  f.stop();
  w.close();
  s.done();
});

test('file follower: a rotation by someone else (the path renamed, a new file) is followed in order', async () => {
  const s = setup();
  const w = writer(s.file);
  const f = s.make();
  f.start();
  w.write('first');
  await waitUntil('first', () => s.lines.length === 1);
  renameSync(s.file, `${s.file}.1`);
  w.reopen();
  w.write('head of new', 'tail of old');
  await waitUntil('both', () => s.lines.length === 3);
  assert.deepEqual(s.lines, ['first', 'tail of old', 'head of new']);
  f.stop();
  w.close();
  s.done();
});

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
