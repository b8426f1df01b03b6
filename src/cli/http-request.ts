import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request as httpRequestRaw, type IncomingMessage } from 'node:http';
import { request as httpsRequestRaw } from 'node:https';
import { checkServerIdentity, rootCertificates, type PeerCertificate } from 'node:tls';

/** How the CLI verifies an HTTPS API and proves itself to one that asks for client certificates. */
export interface ClientTls {
  /** Trusted CAs (PEM texts); the system's roots are always trusted too. */
  ca: string[];
  /** The API's own leaf (SHA-256, colon hex): trusted whatever name it carries (a host's own monitor). */
  pinnedFingerprint: string | null;
  /** Client certificate and key (PEM texts) for mutual TLS. */
  cert?: string;
  key?: string;
}

export interface HttpAnswer {
  status: number;
  text: string;
}

/** A file's text for a TLS option; errors name what it is for and the file. */
export function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${what} ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The leaf's fingerprint of a PEM chain, or null when it does not parse. */
export function leafFingerprint(pem: string): string | null {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return null;
  }
}

/** TURN_MONITOR_CLIENT_CERT / TURN_MONITOR_CLIENT_KEY: the CLI's client certificate for mutual TLS. */
export function clientCertFromEnv(): Pick<ClientTls, 'cert' | 'key'> {
  const cert = process.env.TURN_MONITOR_CLIENT_CERT;
  const key = process.env.TURN_MONITOR_CLIENT_KEY;
  if (!cert || !key) return {};
  return { cert: readPem(cert, 'TURN_MONITOR_CLIENT_CERT'), key: readPem(key, 'TURN_MONITOR_CLIENT_KEY') };
}

/**
 * One request over node:http or node:https (fetch cannot be given a CA); never waits longer than
 * `timeoutMs`. Rejects with an Error whose `code` is the socket's (ECONNREFUSED, a TLS code …).
 */
export function httpRequest(
  url: string,
  o: { method: string; headers: Record<string, string>; body?: string; timeoutMs?: number; tls?: ClientTls },
): Promise<HttpAnswer> {
  const u = new URL(url);
  const https = u.protocol === 'https:';
  const tls = o.tls;
  const options = {
    method: o.method,
    headers: o.body === undefined ? o.headers : { ...o.headers, 'content-length': Buffer.byteLength(o.body) },
    ...(https && tls
      ? {
          ca: [...rootCertificates, ...tls.ca],
          cert: tls.cert,
          key: tls.key,
          checkServerIdentity: (host: string, cert: PeerCertificate) =>
            tls.pinnedFingerprint !== null && cert.fingerprint256 === tls.pinnedFingerprint
              ? undefined
              : checkServerIdentity(host, cert),
        }
      : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (https ? httpsRequestRaw : httpRequestRaw)(u, options, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    const timer =
      o.timeoutMs === undefined
        ? null
        : setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })), o.timeoutMs);
    const settle = () => timer && clearTimeout(timer);
    req.on('close', settle);
    req.on('error', (err) => {
      settle();
      reject(err);
    });
    req.end(o.body);
  });
}
