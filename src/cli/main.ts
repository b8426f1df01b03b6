import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { packageRoot } from '../config/load.js';
import { registerCredential } from './credential.js';
import { registerDemo } from './demo.js';
import { registerServers } from './servers.js';
import { registerStart } from './start.js';
import { registerUsage } from './usage.js';

const version = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')).version as string;

const program = new Command('turn-monitor')
  .description('Supervisor that runs beside coturn on a TURN host')
  .version(version)
  .showHelpAfterError();

registerStart(program);
registerCredential(program);
registerUsage(program);
registerServers(program);
registerDemo(program);

await program.parseAsync(process.argv);
