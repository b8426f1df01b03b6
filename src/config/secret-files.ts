import { readFileSync, statSync } from 'node:fs';
import { ConfigError } from './errors.js';
import { apiKey, apiKeyProblems, type ApiKeyParsed, type ParsedConfig } from './schema.js';
import { isWebhookSecret, WEBHOOK_SECRET_RULE } from './webhooks.js';

// Secrets from files, the Kubernetes secret-volume and systemd LoadCredential= convention: every
// config key holding a secret has a `…File` twin read once at start. Messages name the key and
// the file, never what the file holds.

export interface SecretFile {
  /** The file's text without its trailing newline. */
  text: string;
  /** Set when group or others may read the file. */
  warning: string | null;
}

/** Read one secret file for config key `key` (ConfigError naming both when it cannot be read). */
export function readSecretFile(file: string, key: string): SecretFile {
  let text: string;
  let mode: number;
  try {
    text = readFileSync(file, 'utf8');
    mode = statSync(file).mode;
  } catch (err) {
    throw new ConfigError(
      `config key "${key}": cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
  const who = [mode & 0o040 ? 'group' : '', mode & 0o004 ? 'others' : ''].filter(Boolean).join(' and ');
  const warning = who
    ? `config key "${key}": the secret file ${file} is readable by ${who} (mode ${(mode & 0o777).toString(8)}): chmod 600 it`
    : null;
  return { text: text.replace(/\r?\n$/, ''), warning };
}

/** A webhook endpoint's secretFile, checked for the whsec_ form. */
export function readWebhookSecretFile(file: string, index: number): SecretFile {
  const key = `webhooks.endpoints.${index}.secretFile`;
  const read = readSecretFile(file, key);
  const text = read.text.trim();
  if (!isWebhookSecret(text))
    throw new ConfigError(
      `config key "${key}": the file ${file} ${WEBHOOK_SECRET_RULE.replace(/^must be/, 'must hold')}`,
    );
  return { ...read, text };
}

/**
 * http.apiKeysFile: one key, or one JSON entry ({name, key | sha256, scopes}), per line; blank
 * lines and lines starting with # are skipped. Each line is checked as an http.apiKeys entry.
 */
export function parseApiKeysFile(text: string, file: string, hasCa: boolean): ApiKeyParsed[] {
  const key = 'http.apiKeysFile';
  const keys: ApiKeyParsed[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `config key "${key}": line ${i + 1} of ${file}`;
    let value: unknown = line;
    if (line.startsWith('{')) {
      try {
        value = JSON.parse(line);
      } catch {
        throw new ConfigError(`${where} is not valid JSON`);
      }
    }
    const parsed = apiKey.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const nested =
        issue.code === 'invalid_union' ? (issue.errors.find((e) => e[0]?.code !== 'invalid_type') ?? []) : [];
      const first = nested[0] ?? issue;
      const at = first.path.map(String).join('.');
      throw new ConfigError(`${where}: ${at ? `${at}: ` : ''}${first.message}`);
    }
    keys.push(parsed.data);
  });
  if (keys.length === 0) throw new ConfigError(`config key "${key}": ${file} holds no key`);
  const problems = apiKeyProblems(keys, hasCa);
  if (problems.length > 0)
    throw new ConfigError(
      problems.map((p) => `config key "${key}": entry ${p.index + 1} of ${file}: ${p.message}`).join('\n'),
    );
  return keys;
}

/**
 * Fill every secret from its `…File` twin (the inline key was checked to be unset), in place.
 * Returns the warnings to log (files others may read).
 */
export function readSecretFiles(c: ParsedConfig): string[] {
  const warnings: string[] = [];
  const take = (read: SecretFile) => {
    if (read.warning) warnings.push(read.warning);
    return read.text.trim();
  };
  const oneLine = (text: string, key: string, file: string, rule: RegExp, what: string) => {
    if (!rule.test(text)) throw new ConfigError(`config key "${key}": the file ${file} must hold ${what}`);
    return text;
  };
  if (c.http.apiKeysFile !== undefined) {
    const file = c.http.apiKeysFile;
    c.http.apiKeys = parseApiKeysFile(take(readSecretFile(file, 'http.apiKeysFile')), file, c.http.tls?.ca != null);
  }
  if (c.redis.urlFile !== undefined) {
    const file = c.redis.urlFile;
    const text = take(readSecretFile(file, 'redis.urlFile'));
    c.redis.url = oneLine(text, 'redis.urlFile', file, /^rediss?:\/\/\S+$/, 'one redis:// URL');
  }
  const pg = c.export.postgres;
  if (pg.urlFile !== undefined) {
    const text = take(readSecretFile(pg.urlFile, 'export.postgres.urlFile'));
    pg.url = oneLine(
      text,
      'export.postgres.urlFile',
      pg.urlFile,
      /^postgres(ql)?:\/\/\S+$/,
      'one postgres:// connection string',
    );
  }
  const zk = c.zookeeper;
  if (zk.authFile !== undefined) {
    const text = take(readSecretFile(zk.authFile, 'zookeeper.authFile'));
    zk.auth = oneLine(text, 'zookeeper.authFile', zk.authFile, /^[^:\s]+:\S+$/, 'user:password');
  }
  c.webhooks.endpoints.forEach((e, i) => {
    if (e.secret === null && e.secretFile !== null) e.secret = take(readWebhookSecretFile(e.secretFile, i));
  });
  return warnings;
}
