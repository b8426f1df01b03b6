import type { AppContext } from '../context.js';
import { Credentials } from './credentials.js';

/** Credential rotation through turnadmin; its lines go into turnserver.conf. */
export function createCredentials(ctx: AppContext, opts: { hostId?: string } = {}): Credentials {
  const credentials = new Credentials(ctx, opts.hostId ?? null);
  ctx.supervisor.addContributor(credentials);
  return credentials;
}
