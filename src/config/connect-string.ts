/**
 * Why a ZooKeeper connect string ("host:port[,host:port…][/chroot]") is unusable, or null.
 * node-zookeeper-client does not check it, and a bad port throws from inside a timer later,
 * which would take the whole process down.
 */
export function connectStringProblem(connect: string): string | null {
  const slash = connect.indexOf('/');
  const servers = slash >= 0 ? connect.slice(0, slash) : connect;
  if (servers.trim() === '') return 'must name at least one host:port';
  for (const server of servers.split(',')) {
    const m = /^([^\s:,/]+)(?::(\d{1,5}))?$/.exec(server.trim());
    if (!m) return `"${server}" is not host:port`;
    if (m[2] !== undefined && (Number(m[2]) < 1 || Number(m[2]) > 65535)) return `port of "${server}" is out of range`;
  }
  return null;
}
