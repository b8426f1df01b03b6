import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';

function sink(): { stream: Writable; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

test('JSON lines by default (not a terminal): level label, component, secrets redacted', () => {
  const out = sink();
  createLogger('info', out.stream).child({ component: 'stats' }).warn({ event: 'x', password: 'hunter2' }, 'hello');
  const entry = JSON.parse(out.text());
  assert.equal(entry.level, 'warn');
  assert.equal(entry.component, 'stats');
  assert.equal(entry.msg, 'hello');
  assert.equal(entry.password, '[redacted]');
});

test('pretty lines for a person: one readable line with the component, secrets still redacted', () => {
  const out = sink();
  createLogger('info', out.stream, { pretty: true })
    .child({ component: 'stats' })
    .warn({ event: 'x', password: 'hunter2' }, 'hello');
  const text = out.text();
  assert.throws(() => JSON.parse(text));
  assert.match(text, /WARN.*stats: hello/);
  assert.doesNotMatch(text, /hunter2/);
});
