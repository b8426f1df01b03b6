/** Realistic coturn redis-statsdb events: 100 per allocation, as a real allocation's life. */
export function allocationEvents(i: number): [string, string][] {
  const id = String(1e15 * (i % 2) + i + 1).padStart(18, '0');
  const topic = `turn/realm/bench.org/user/${1795000000 + (i % 977)}:client${i % 1000}/allocation/${id}/`;
  const addr = `type=UDP, local=127.0.0.1:3478, remote=127.0.0.1:${10000 + (i % 50000)}, ssl=NONE, cipher=NONE`;
  const out: [string, string][] = [[`${topic}status`, `new lifetime=600, ${addr}`]];
  out.push(
    [`${topic}status`, `refreshed lifetime=600, ${addr}`],
    [`${topic}status`, `refreshed lifetime=600, ${addr}`],
  );
  for (let k = 0; k < 47; k++) {
    out.push([`${topic}traffic`, 'rcvp=4096, rcvb=421888, sentp=4096, sentb=413696']);
    out.push([`${topic}traffic/peer`, 'rcvp=4096, rcvb=409600, sentp=4096, sentb=409600']);
  }
  out.push([`${topic}status`, 'deleted']);
  out.push([
    `${topic}total_traffic`,
    `rcvp=${47 * 4096}, rcvb=${47 * 421888}, sentp=${47 * 4096}, sentb=${47 * 413696}`,
  ]);
  out.push([
    `${topic}total_traffic/peer`,
    `rcvp=${47 * 4096}, rcvb=${47 * 409600}, sentp=${47 * 4096}, sentb=${47 * 409600}`,
  ]);
  return out;
}
