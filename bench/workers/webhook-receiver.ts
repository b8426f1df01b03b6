// Benchmark worker: a bare node:http webhook receiver answering 200 at once. Prints `listening
// PORT`, then on every `report` line read from stdin: `n COUNT FIRST_MS LAST_MS` (requests since
// the last `reset`); with `time` it also prints `e ALLOCATION_ID MS` for every allocation.ended.
import http from 'node:http';
import readline from 'node:readline';

let count = 0;
let first = 0;
let last = 0;
let timeEnded = false;
let ended: string[] = [];
const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const now = Date.now();
    if (count++ === 0) first = now;
    last = now;
    if (timeEnded) {
      const e = JSON.parse(Buffer.concat(chunks).toString()) as { type: string; data: { allocationId: string } };
      if (e.type === 'allocation.ended') ended.push(`e ${e.data.allocationId} ${now}\n`);
    }
    res.writeHead(200).end();
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
});
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'reset') [count, first, last, ended] = [0, 0, 0, []];
  else if (line === 'time') timeEnded = true;
  else if (line === 'report') {
    process.stdout.write(ended.join('') + `n ${count} ${first} ${last}\n`);
    ended = [];
  }
});
