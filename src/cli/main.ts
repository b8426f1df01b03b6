import { Command } from 'commander';
import { packageVersion } from '../config/package.js';
import { registerCredential } from './credential.js';
import { registerDemo } from './demo.js';
import { registerFleet } from './fleet.js';
import { registerServers } from './servers.js';
import { registerStart } from './start.js';
import { registerUsage } from './usage.js';

const program = new Command('turn-monitor')
  .description('Supervisor that runs beside coturn on a TURN host')
  .version(packageVersion)
  .showHelpAfterError();

registerStart(program);
registerCredential(program);
registerUsage(program);
registerServers(program);
registerFleet(program);
registerDemo(program);

await program.parseAsync(process.argv);
