import type { AppContext } from '../context.js';
import type { Subsystem } from '../lifecycle.js';
import { Credentials } from './credentials.js';
import { credentialRoutes } from './routes.js';

/** Credential rotation through turnadmin, served at GET /turncredential. */
export function createCredentials(ctx: AppContext): Subsystem {
  const credentials = new Credentials(ctx);
  ctx.supervisor.addContributor(credentials);
  ctx.http.addRoutes(credentialRoutes(credentials, ctx.config.http.rateLimitPerMinute, ctx.logger.child({ component: 'credentials' })));
  return credentials;
}
