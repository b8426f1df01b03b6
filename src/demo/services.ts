import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

/** Send text to a loopback TCP port and collect the answer until it closes (ZooKeeper four-letter words, a raw PING). */
export function tcpSay(port: number, text: string, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1');
    const done = () => {
      s.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    s.setTimeout(timeoutMs, done);
    s.on('connect', () => s.write(text));
    s.on('data', (d) => chunks.push(d));
    s.on('end', done);
    s.on('error', done);
  });
}

/**
 * The command of a throwaway standalone ZooKeeper (Debian's jars, Java 17) serving on a loopback
 * port, its data and zoo.cfg in `dir`. Used by the demo and the test harness alike.
 */
export function zookeeperCommand(dir: string, port: number): { file: string; args: string[] } {
  mkdirSync(path.join(dir, 'data'), { recursive: true });
  const cfg = path.join(dir, 'zoo.cfg');
  const lines = [
    'tickTime=500',
    `dataDir=${path.join(dir, 'data')}`,
    `clientPort=${port}`,
    'clientPortAddress=127.0.0.1',
    'maxClientCnxns=0',
    'minSessionTimeout=1000',
    'maxSessionTimeout=60000',
    'admin.enableServer=false',
    '4lw.commands.whitelist=ruok,srvr,mntr,stat,cons,dump',
  ];
  writeFileSync(cfg, lines.join('\n') + '\n');
  return {
    file: 'java',
    args: [
      '-Xms32m',
      '-Xmx128m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
      '-Dzookeeper.forceSync=no',
      '-cp',
      '/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar',
      'org.apache.zookeeper.server.ZooKeeperServerMain',
      cfg,
    ],
  };
}

/** ZooKeeper serves (`ruok` answers earlier, while it still refuses sessions). */
export async function zookeeperServing(port: number): Promise<boolean> {
  return (await tcpSay(port, 'srvr', 500)).includes('Mode: standalone');
}
