import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import path from 'node:path';

export interface Pair {
  cert: string;
  key: string;
  /** SHA-256 fingerprint as node:tls reports it (colon hex). */
  fingerprint: string;
}

/**
 * A self-signed EC pair made with openssl in `dir`: `days` ≥ 1 valid from now, `days: -1` already
 * expired (openssl 3.0 has no -not_after; a negative -days puts notAfter in the past).
 */
export function makePair(dir: string, name: string, o: { cn?: string; san?: string; days?: number } = {}): Pair {
  mkdirSync(dir, { recursive: true });
  const cert = path.join(dir, `${name}.crt.pem`);
  const key = path.join(dir, `${name}.key.pem`);
  const csr = path.join(dir, `${name}.csr`);
  const subj = `/CN=${o.cn ?? 'turn.test'}`;
  const quiet = { stdio: 'ignore' } as const;
  execFileSync(
    'openssl',
    [
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      subj,
      '-keyout',
      key,
      '-out',
      csr,
    ],
    quiet,
  );
  const ext = path.join(dir, `${name}.ext`);
  execFileSync('sh', [
    '-c',
    `printf 'subjectAltName=%s\\n' "$1" > "$2"`,
    'sh',
    o.san ?? `DNS:${o.cn ?? 'turn.test'}`,
    ext,
  ]);
  execFileSync(
    'openssl',
    ['x509', '-req', '-in', csr, '-signkey', key, '-days', String(o.days ?? 30), '-extfile', ext, '-out', cert],
    quiet,
  );
  const fingerprint = /=([0-9A-F:]+)/.exec(
    execFileSync('openssl', ['x509', '-in', cert, '-noout', '-fingerprint', '-sha256'], { encoding: 'utf8' }),
  )![1];
  return { cert, key, fingerprint };
}

/** certbot's layout: live/cert.pem and live/key.pem are symlinks into the archive. */
export function linkPair(liveDir: string, pair: { cert: string; key: string }): { cert: string; key: string } {
  mkdirSync(liveDir, { recursive: true });
  const out = { cert: path.join(liveDir, 'cert.pem'), key: path.join(liveDir, 'key.pem') };
  // Each link replaced atomically (new link, rename over the old), key first as certbot does not promise an order.
  for (const [link, target] of [
    [out.key, pair.key],
    [out.cert, pair.cert],
  ] as const) {
    const tmp = `${link}.tmp`;
    symlinkSync(target, tmp);
    renameSync(tmp, link);
  }
  return out;
}

export const pem = (file: string) => readFileSync(file, 'utf8');
