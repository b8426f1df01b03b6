import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Registry } from 'prom-client';
import { registerStatsMetrics } from '../../src/stats/metrics.js';

test('per-event metrics are plain sums folded into the counters at each scrape, never lost or counted twice', async () => {
  const registry = new Registry();
  const m = registerStatsMetrics(registry, () => 3);
  const before = await registry.metrics();
  assert.match(before, /^turn_monitor_relayed_bytes_total\{side="client",direction="rcv"\} 0$/m);
  m.event('traffic');
  m.event('traffic');
  m.event('status');
  m.relayed(false, 100, 200);
  m.relayed(true, 10, 20);
  let text = await registry.metrics();
  assert.match(text, /^turn_monitor_stats_events_total\{kind="traffic"\} 2$/m);
  assert.match(text, /^turn_monitor_stats_events_total\{kind="status"\} 1$/m);
  assert.match(text, /^turn_monitor_relayed_bytes_total\{side="client",direction="sent"\} 200$/m);
  assert.match(text, /^turn_monitor_relayed_bytes_total\{side="peer",direction="rcv"\} 10$/m);
  assert.match(text, /^turn_monitor_open_allocations 3$/m);
  m.event('traffic');
  m.relayed(false, 1, 2);
  text = await registry.metrics();
  assert.match(text, /^turn_monitor_stats_events_total\{kind="traffic"\} 3$/m);
  assert.match(text, /^turn_monitor_relayed_bytes_total\{side="client",direction="rcv"\} 101$/m);
  text = await registry.metrics();
  assert.match(text, /^turn_monitor_stats_events_total\{kind="traffic"\} 3$/m, 'a second scrape adds nothing');
});
