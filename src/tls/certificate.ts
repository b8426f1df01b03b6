import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile, realpath } from 'node:fs/promises';
import { isIP } from 'node:net';

/** What the monitor knows about a certificate: shown in /health and by `turn-monitor tls`. */
export interface CertificateInfo {
  subject: string;
  /** DNS names and IP addresses of subjectAltName; the subject's CN when there is none. */
  names: string[];
  notBefore: string;
  notAfter: string;
  /** SHA-256 of the leaf certificate, colon-separated hex (as node:tls reports the served one). */
  fingerprint: string;
}

/** A pair that must not be loaded; names the file and the reason, never the file's content. */
export class CertificateError extends Error {
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`TLS ${file}: ${reason}`);
    this.name = 'CertificateError';
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;
const DAY_MS = 86_400_000;

/** Whole days from now until notAfter (negative once expired). */
export function daysLeft(info: Pick<CertificateInfo, 'notAfter'>, now = Date.now()): number {
  return Math.floor((Date.parse(info.notAfter) - now) / DAY_MS);
}

function namesOf(cert: X509Certificate): string[] {
  const names = (cert.subjectAltName ?? '')
    .split(/,\s*/)
    .map((entry) => /^(?:DNS|IP Address):(.+)$/.exec(entry)?.[1])
    .filter((n): n is string => !!n);
  if (names.length > 0) return names;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn ? [cn] : [];
}

function parseChain(pem: string, file: string): X509Certificate[] {
  const blocks = pem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new CertificateError(file, 'no PEM certificate found');
  const chain = blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new CertificateError(file, `certificate ${i + 1} of the chain does not parse`);
    }
  });
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i].checkIssued(chain[i + 1]) || !chain[i].verify(chain[i + 1].publicKey)) {
      throw new CertificateError(
        file,
        `certificate ${i + 1} of the chain is not issued by certificate ${i + 2} (wrong order or foreign chain)`,
      );
    }
  }
  return chain;
}

function parseKey(pem: string, file: string): KeyObject {
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) throw new CertificateError(file, 'no PEM private key found');
  try {
    return createPrivateKey(pem);
  } catch {
    // node's message says nothing useful and must not be trusted not to quote the input.
    throw new CertificateError(file, 'the private key does not parse (encrypted keys are not supported)');
  }
}

export interface CheckOptions {
  certFile: string;
  keyFile: string;
  /** The name clients validate against; checked when set. */
  serverName?: string | null;
  now?: number;
}

/**
 * Every check before a pair is used: the chain and the key parse, the key belongs to the leaf,
 * the leaf is valid now and covers serverName. Throws CertificateError naming the file at fault.
 */
export function checkPair(certPem: string, keyPem: string, o: CheckOptions): CertificateInfo {
  const chain = parseChain(certPem, o.certFile);
  const key = parseKey(keyPem, o.keyFile);
  const leaf = chain[0];
  if (!leaf.checkPrivateKey(key))
    throw new CertificateError(o.keyFile, `the private key does not match the certificate in ${o.certFile}`);
  const now = o.now ?? Date.now();
  const notBefore = new Date(leaf.validFrom);
  const notAfter = new Date(leaf.validTo);
  if (now > notAfter.getTime())
    throw new CertificateError(o.certFile, `the certificate expired at ${notAfter.toISOString()}`);
  if (now < notBefore.getTime())
    throw new CertificateError(o.certFile, `the certificate is not valid before ${notBefore.toISOString()}`);
  const name = o.serverName;
  if (name) {
    const covered = isIP(name) ? leaf.checkIP(name) !== undefined : leaf.checkHost(name) !== undefined;
    if (!covered) throw new CertificateError(o.certFile, `the certificate's names do not cover serverName ${name}`);
  }
  return {
    subject: leaf.subject.replace(/\n/g, ', '),
    names: namesOf(leaf),
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    fingerprint: leaf.fingerprint256,
  };
}

/** A path as errors name it: with certbot's symlinks, also the file it leads to. */
async function describe(file: string): Promise<string> {
  const real = await realpath(file).catch(() => file);
  return real === file ? file : `${file} (-> ${real})`;
}

export interface CheckedPair {
  info: CertificateInfo;
  /** The exact texts that were checked (so what is installed is what passed). */
  certPem: string;
  keyPem: string;
}

/** Read both files and check them; an unreadable file is a CertificateError too. */
export async function readAndCheckPair(o: CheckOptions): Promise<CheckedPair> {
  const read = async (file: string) => {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new CertificateError(file, `cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  };
  const [cert, key, certFile, keyFile] = await Promise.all([
    read(o.certFile),
    read(o.keyFile),
    describe(o.certFile),
    describe(o.keyFile),
  ]);
  return { info: checkPair(cert, key, { ...o, certFile, keyFile }), certPem: cert, keyPem: key };
}
