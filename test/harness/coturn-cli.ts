import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { MonitorProcess } from './monitor.js';

/** The CLI port and password of the monitor's current turnserver, read from its rendered conf. */
export function cliAccess(m: MonitorProcess): { port: number; password: string } {
  const conf = readFileSync(path.join(m.dataDir, 'turnserver.conf'), 'utf8');
  const port = Number(/^cli-port=(\d+)$/m.exec(conf)?.[1]);
  const password = /^cli-password=(\S+)$/m.exec(conf)?.[1];
  if (!port || !password) throw new Error('no cli-port/cli-password in the rendered conf');
  return { port, password };
}

/**
 * One command on coturn's admin CLI over a connection of the test's own (independent of the
 * monitor's client): login, the command, its answer up to the prompt.
 */
export function cliCommand(m: MonitorProcess, command: string, timeoutMs = 5000): Promise<string> {
  const { port, password } = cliAccess(m);
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    let stage: 'banner' | 'login' | 'answer' = 'banner';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`CLI "${command}" not answered within ${timeoutMs} ms`));
    }, timeoutMs);
    s.setEncoding('utf8');
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('data', (d: string) => {
      buf += d;
      if (stage === 'banner' && buf.includes('Enter password:')) {
        stage = 'login';
        buf = '';
        s.write(`${password}\r\n`);
      } else if (stage === 'login' && buf.endsWith('> ')) {
        stage = 'answer';
        buf = '';
        s.write(`${command}\r\n`);
      } else if (stage === 'answer' && (buf === '> ' || buf.endsWith('\n> '))) {
        clearTimeout(timer);
        s.destroy();
        resolve(buf);
      }
    });
  });
}

/** Allocation ids (and usernames) coturn lists in `ps`, parsed here independently of src/admin. */
export async function coturnSessions(m: MonitorProcess): Promise<{ ids: Map<string, string>; total: number }> {
  const text = await cliCommand(m, 'ps');
  const ids = new Map<string, string>();
  for (const match of text.matchAll(/\d+\) id=(\d+), user <(.*)>:/g)) ids.set(match[1], match[2]);
  const total = Number(/Total sessions: (\d+)/.exec(text)?.[1] ?? NaN);
  return { ids, total };
}
