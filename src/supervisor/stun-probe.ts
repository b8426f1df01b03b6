import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { isIPv6 } from 'node:net';

const BINDING_REQUEST = 0x0001;
const BINDING_SUCCESS = 0x0101;
const MAGIC_COOKIE = 0x2112a442;

/** A 20-byte STUN Binding request (RFC 5389) with a random transaction id. */
export function bindingRequest(): { packet: Buffer; transactionId: Buffer } {
  const packet = Buffer.alloc(20);
  packet.writeUInt16BE(BINDING_REQUEST, 0);
  packet.writeUInt16BE(0, 2);
  packet.writeUInt32BE(MAGIC_COOKIE, 4);
  const transactionId = randomBytes(12);
  transactionId.copy(packet, 8);
  return { packet, transactionId };
}

/** True when the buffer is a STUN Binding success response to this transaction. */
export function isBindingResponse(msg: Buffer, transactionId: Buffer): boolean {
  return (
    msg.length >= 20 &&
    msg.readUInt16BE(0) === BINDING_SUCCESS &&
    msg.readUInt32BE(4) === MAGIC_COOKIE &&
    msg.subarray(8, 20).equals(transactionId)
  );
}

/** The address to probe: a wildcard listener is reached through loopback. */
export function probeHost(listeningIp: string): string {
  if (listeningIp === '0.0.0.0') return '127.0.0.1';
  if (listeningIp === '::') return '::1';
  return listeningIp;
}

/**
 * Send one STUN Binding request over UDP and resolve true on a matching answer, false on timeout.
 * This is what "serving" means: turnserver has no ready log line.
 */
export function stunProbe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const { packet, transactionId } = bindingRequest();
    let settled = false;
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearInterval(resend);
      socket.close();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    const send = () => socket.send(packet, port, host, (err) => err && finish(false));
    // Until the server has bound its port the datagrams are dropped (no error on an unconnected
    // socket): resend a few times, at least every 20 ms, so a server coming up is seen at once.
    const resend = setInterval(send, Math.max(20, Math.floor(timeoutMs / 4)));
    socket.on('message', (msg) => {
      if (isBindingResponse(msg, transactionId)) finish(true);
    });
    socket.on('error', () => finish(false));
    send();
  });
}
