import assert from 'node:assert/strict';
import { harnessTest } from '../harness/harness.js';
import { monitorBin } from '../harness/monitor.js';

harnessTest(
  'turn-monitor demo: runs the whole product with real parts, prints usage, exits 0, leaves nothing behind',
  async (h) => {
    // TMPDIR inside the harness dir: the leak check then sees anything the demo left running.
    const r = await h.run('demo', process.execPath, [monitorBin, 'demo'], {
      env: { ...process.env, TMPDIR: h.dir },
      timeoutMs: 90_000,
    });
    assert.equal(r.code, 0, r.output.slice(-1500));
    assert.match(r.output, /GET \/turncredential → user/);
    assert.match(r.output, /open allocations [1-9]/);
    assert.match(r.output, /Usage by allocation:[\s\S]*deleted/);
    assert.match(r.output, /Usage by session:[\s\S]*true/);
    assert.match(r.output, /everything stopped and removed/);
  },
  { timeout: 120_000 },
);
