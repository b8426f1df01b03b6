// Benchmark baseline: a bare node:http server answering every request with a fixed JSON body.
import http from 'node:http';

const [port, size] = [Number(process.argv[2]), Number(process.argv[3])];
const body = JSON.stringify({ pad: 'x'.repeat(Math.max(0, size - 10)) });
http
  .createServer((_req, res) => {
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
  })
  .listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
