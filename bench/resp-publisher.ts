import net from 'node:net';

/**
 * PUBLISH commands written to Redis as raw RESP over one socket, resolving once Redis has
 * answered all of them. A client library builds a command object per message; the benchmarks
 * publish backlogs of hundreds of thousands of events between timed drains, and that set-up
 * time is what bounds how many drains a run can afford.
 */
export class RespPublisher {
  private readonly socket: net.Socket;
  private readonly connected: Promise<void>;
  private waiter: { resolve: () => void; reject: (err: Error) => void } | null = null;
  // The end of what came before (a reply starts after a CRLF, the first one too).
  private tail = '\r\n';

  constructor(port: number, host = '127.0.0.1') {
    this.socket = net.connect(port, host);
    this.socket.setEncoding('latin1');
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    // A refused connection surfaces at the next publish(), not as an unhandled rejection now.
    this.connected.catch(() => undefined);
    this.socket.on('data', (chunk: string) => this.onData(chunk));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(new Error('redis closed the connection')));
  }

  /** Publish every [channel, message] pair (ASCII) in order; resolves when Redis has processed them. */
  async publish(messages: Iterable<readonly [string, string]>): Promise<void> {
    await this.connected;
    if (this.waiter) throw new Error('one publish at a time');
    let out = '';
    for (const [channel, message] of messages) {
      out += `*3\r\n$7\r\nPUBLISH\r\n$${channel.length}\r\n${channel}\r\n$${message.length}\r\n${message}\r\n`;
      if (out.length > 1 << 20) {
        this.socket.write(out, 'latin1');
        out = '';
      }
    }
    // Replies come in order: the PING's answer follows the last PUBLISH's.
    this.socket.write(`${out}*1\r\n$4\r\nPING\r\n`, 'latin1');
    await new Promise<void>((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }

  private onData(chunk: string): void {
    // Every PUBLISH answers an integer (:N); an error reply (-ERR ...) fails the batch.
    const text = this.tail + chunk;
    if (text.includes('\r\n-'))
      return this.fail(new Error(`redis refused a PUBLISH: ${text.split('\r\n-')[1].split('\r\n')[0]}`));
    this.tail = text.slice(-16);
    if (text.endsWith('+PONG\r\n')) {
      this.tail = '\r\n';
      const w = this.waiter;
      this.waiter = null;
      w?.resolve();
    }
  }

  private fail(err: Error): void {
    const w = this.waiter;
    this.waiter = null;
    w?.reject(err);
  }
}
