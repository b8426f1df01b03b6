import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseSource, parseVersion } from '../../src/stats/source-choice.js';

test("source 'auto': log below coturn 4.13.0 (the % crash), both from 4.13.0, log when the version is unknown", () => {
  assert.deepEqual(parseVersion('4.6.1'), [4, 6, 1]);
  assert.deepEqual(parseVersion("Version Coturn-4.13.0 'X'"), [4, 13, 0]);
  assert.equal(chooseSource('auto', '4.6.1').source, 'log');
  assert.match(chooseSource('auto', '4.6.1').reason, /4\.6\.1 < 4\.13\.0/);
  assert.equal(chooseSource('auto', '4.12.9').source, 'log');
  assert.equal(chooseSource('auto', '4.13.0').source, 'both');
  assert.equal(chooseSource('auto', '5.0').source, 'both');
  assert.equal(chooseSource('auto', null).source, 'log');
  assert.equal(chooseSource('auto', 'garbage').source, 'log');
  assert.deepEqual(chooseSource('redis', '4.6.1'), { source: 'redis', reason: 'configured', version: '4.6.1' });
});
