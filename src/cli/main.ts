import { Command } from 'commander';
import { packageVersion } from '../config/package.js';
import { registerCredential } from './credential.js';
import { registerDemo } from './demo.js';
import { registerFleet } from './fleet.js';
import { registerFleetCheck } from './fleet-check.js';
import { registerDrain } from './drain.js';
import { registerQuota } from './quota.js';
import { registerRestart } from './restart.js';
import { registerServers } from './servers.js';
import { registerSessions } from './sessions.js';
import { registerStart } from './start.js';
import { registerTls } from './tls.js';
import { registerUsage } from './usage.js';
import { registerWebhooks } from './webhooks.js';

const program = new Command('turn-monitor')
  .description('Supervisor that runs beside coturn on a TURN host')
  .version(packageVersion)
  .showHelpAfterError();

registerStart(program);
registerRestart(program);
registerDrain(program);
registerCredential(program);
registerUsage(program);
registerSessions(program);
registerQuota(program);
registerServers(program);
registerTls(program);
registerFleet(program);
registerFleetCheck(program);
registerWebhooks(program);
registerDemo(program);

await program.parseAsync(process.argv);
