import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { writeFileAtomic } from '../util/atomic-write.js';

/** One rotated credential: a userdb user (with password) or a REST-API shared secret. */
const entrySchema = z.object({
  id: z.string().min(1),
  /** userdb mode: the user's password; secret mode: the shared secret itself. */
  secret: z.string().min(1),
  issuedAt: z.number(),
  /** When it stops working and is deleted (ms); null for the current REST secret. */
  expiresAt: z.number().nullable(),
});

/**
 * A denied client id (secret mode): refused until `until` (a revoke: every credential issued to
 * it before has expired; a quota: the period's end). With the fleet deny list on, `unsynced`
 * marks an entry made here that ZooKeeper has not got yet (written when it is back).
 */
const deniedSchema = z.object({
  clientId: z.string().min(1),
  revokedAt: z.number(),
  until: z.number(),
  reason: z.enum(['revoked', 'quota']).default('revoked'),
  /** The host that made it (null in files written before the fleet deny list). */
  by: z.string().nullable().default(null),
  unsynced: z.boolean().default(false),
});

const stateSchema = z.object({
  version: z.literal(1),
  mode: z.enum(['userdb', 'secret']),
  realm: z.string(),
  /** Oldest first; the last one is current. */
  entries: z.array(entrySchema),
  /** Files written before revocation existed have none. */
  denied: z.array(deniedSchema).default([]),
  /** Fleet deny list: client ids whose lift ZooKeeper has not got yet. */
  liftsUnsynced: z.array(z.string()).default([]),
});

export type CredentialEntry = z.infer<typeof entrySchema>;
export type DeniedClient = z.infer<typeof deniedSchema>;
export type CredentialState = z.infer<typeof stateSchema>;

export type LoadResult = { state: CredentialState } | { state: null; problem: string | null };

/** Read credential.json; a missing file is normal, a corrupt one is reported (never thrown). */
export async function loadState(file: string): Promise<LoadResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { state: null, problem: code === 'ENOENT' ? null : `cannot read ${file}: ${code}` };
  }
  try {
    const parsed = stateSchema.safeParse(JSON.parse(text));
    if (parsed.success) return { state: parsed.data };
    return { state: null, problem: `${file} has an unexpected shape` };
  } catch {
    return { state: null, problem: `${file} is not valid JSON` };
  }
}

/** Atomic write (temp file + rename), mode 0600: it holds live passwords. */
export async function saveState(file: string, state: CredentialState): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(state, null, 2), 0o600);
}
