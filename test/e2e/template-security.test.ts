import assert from 'node:assert/strict';
import { harnessTest } from '../harness/harness.js';
import { startMonitor } from '../harness/monitor.js';
import { runUclient, startPeer } from '../harness/services.js';

// A static test user through extraConfig keeps this independent of credential rotation.
const user = { user: 'tpl-test', password: 'tpl-test-password' };
const extraConfig = [`user=${user.user}:${user.password}`];

harnessTest('the default template refuses to relay to loopback; allowLoopbackPeers lifts exactly that', async (h) => {
  const peer = await startPeer(h);
  const denied = await startMonitor(h, { turnserver: { allowLoopbackPeers: false, extraConfig } });
  const refused = await runUclient(h, {
    turnPort: denied.turnPort,
    peerPort: peer.port,
    ...user,
    messages: 10,
    timeoutMs: 30_000,
  });
  assert.match(refused.output, /403 \(Forbidden IP\)/, 'turnserver refuses a loopback peer by default');
  assert.equal(refused.lostPackets === 0, false, 'nothing was relayed');
  assert.equal((await denied.stop()).code, 0);

  const allowed = await startMonitor(h, { turnserver: { allowLoopbackPeers: true, extraConfig } });
  const relayed = await runUclient(h, { turnPort: allowed.turnPort, peerPort: peer.port, ...user, messages: 10 });
  assert.equal(relayed.code, 0, relayed.output.slice(-500));
  assert.equal(relayed.lostPackets, 0);
  assert.equal((await allowed.stop()).code, 0);
});
