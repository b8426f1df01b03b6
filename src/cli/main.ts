import { Command } from 'commander';
import { packageVersion } from '../config/package.js';
import { registerCredential } from './credential.js';
import { registerDemo } from './demo.js';
import { registerDrain } from './drain.js';
import { registerRestart } from './restart.js';
import { registerServers } from './servers.js';
import { registerStart } from './start.js';
import { registerUsage } from './usage.js';

const program = new Command('turn-monitor')
  .description('Supervisor that runs beside coturn on a TURN host')
  .version(packageVersion)
  .showHelpAfterError();

registerStart(program);
registerRestart(program);
registerDrain(program);
registerCredential(program);
registerUsage(program);
registerServers(program);
registerDemo(program);

await program.parseAsync(process.argv);
