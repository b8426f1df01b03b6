// Worker thread of the webhooks subsystem: sends the outbox of usage.db to the endpoints, so
// that HTTP, signing and the outbox's reads never run on the event loop that ingests usage and
// answers /turncredential, and a slow or dead endpoint can only ever occupy this thread.
import { readlinkSync } from 'node:fs';
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { Dispatcher } from './dispatcher.js';
import type { FromThread, ThreadConfig, ToThread } from './protocol.js';

// Nice 10 for this thread alone (Linux: a thread id is a pid to setpriority): when the host is
// busy, ingest and the credential API go first and deliveries catch up after.
try {
  os.setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), 10);
} catch {
  /* not Linux, or not allowed: same priority as the rest */
}

const port = parentPort!;
const post = (m: FromThread) => port.postMessage(m);
let dispatcher: Dispatcher;
try {
  dispatcher = new Dispatcher(workerData as ThreadConfig, post);
} catch (err) {
  post({ type: 'failed', message: (err as Error).message });
  port.close();
  throw err;
}
port.on('message', (m: ToThread) => {
  if (m.type === 'poke') dispatcher.poke();
  else if (m.type === 'busy') dispatcher.setBusy(m.busy);
  else if (m.type === 'stop')
    void dispatcher.stop(m.drainMs).finally(() => {
      post({ type: 'stopped' });
      port.close();
    });
});
dispatcher.start();
post({ type: 'ready' });
