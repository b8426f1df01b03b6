// Benchmark probe: GET /turncredential every PROBE_MS in a process of its own, so that what the
// harness does meanwhile (reading megabytes of usage) cannot delay the probe it measures. On
// SIGTERM it prints {count, maxWaitMs, maxGapMs}: the longest wait for an answer, and the longest
// time between two answers beyond the probe period.
const [url, key, periodText] = process.argv.slice(2);
const period = Number(periodText);
let count = 0;
let maxWait = 0;
let maxGap = 0;
let running = true;
process.on('SIGTERM', () => (running = false));

let last = performance.now();
while (running) {
  const t0 = performance.now();
  const r = await fetch(url, { headers: { authorization: `Bearer ${key}` } });
  await r.arrayBuffer();
  if (r.status !== 200) throw new Error(`/turncredential: HTTP ${r.status}`);
  const t1 = performance.now();
  maxWait = Math.max(maxWait, t1 - t0);
  if (count > 0) maxGap = Math.max(maxGap, t1 - last - period);
  last = t1;
  count++;
  if (count === 1) process.stdout.write('probing\n');
  await new Promise((resolve) => setTimeout(resolve, period));
}
process.stdout.write(`${JSON.stringify({ count, maxWaitMs: maxWait, maxGapMs: maxGap })}\n`);
