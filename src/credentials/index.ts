import type { AppContext } from '../context.js';
import { Credentials } from './credentials.js';

/** Credential rotation through turnadmin; its lines go into turnserver.conf. */
export function createCredentials(ctx: AppContext): Credentials {
  const credentials = new Credentials(ctx);
  ctx.supervisor.addContributor(credentials);
  return credentials;
}
