// Benchmark baseline: a bare ioredis psubscribe that only counts messages, printing `done N`
// each time N reaches a multiple of the expected count (one line per drained backlog).
import { Redis } from 'ioredis';

const [port, expected] = [Number(process.argv[2]), Number(process.argv[3])];
const sub = new Redis({ port, host: '127.0.0.1' });
let count = 0;
sub.on('pmessage', () => {
  if (++count % expected === 0) process.stdout.write(`done ${count}\n`);
});
await sub.psubscribe('turn/*');
process.stdout.write('ready\n');
