import tls from 'node:tls';
import { bindingRequest, isBindingResponse } from '../supervisor/stun-probe.js';

export interface TlsProbeResult {
  /** A STUN Binding over the TLS connection was answered. */
  ok: boolean;
  /** SHA-256 fingerprint of the certificate the server presented (null when no handshake). */
  fingerprint: string | null;
}

/**
 * Connect over TLS, note the served certificate, send one STUN Binding request (RFC 5389 over
 * TLS: the message unframed on the stream) and wait for its answer. Never validates the
 * certificate: this asks what turnserver serves, not whether a client would accept it.
 * `onLocal` learns the connection's local `ip:port` before the request goes out (the address
 * coturn reports the probe's session under).
 */
export function tlsStunProbe(
  host: string,
  port: number,
  timeoutMs: number,
  onLocal?: (address: string) => void,
): Promise<TlsProbeResult> {
  return new Promise((resolve) => {
    let fingerprint: string | null = null;
    let settled = false;
    let received = Buffer.alloc(0);
    const { packet, transactionId } = bindingRequest();
    const socket = tls.connect({ host, port, rejectUnauthorized: false });
    const finish = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok, fingerprint });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.once('secureConnect', () => {
      fingerprint = socket.getPeerCertificate().fingerprint256 ?? null;
      if (onLocal && socket.localAddress && socket.localPort) onLocal(`${socket.localAddress}:${socket.localPort}`);
      socket.write(packet);
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length >= 20) finish(isBindingResponse(received.subarray(0, 20), transactionId));
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });
}
