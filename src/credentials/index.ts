import type { AppContext } from '../context.js';
import type { Subsystem } from '../lifecycle.js';
import { Credentials } from './credentials.js';
import { credentialHandler, rotateRoute } from './routes.js';

/** Credential rotation through turnadmin, served at GET /turncredential. */
export function createCredentials(ctx: AppContext): Subsystem {
  const credentials = new Credentials(ctx);
  ctx.supervisor.addContributor(credentials);
  const { apiKeys, rateLimitPerMinute } = ctx.config.http;
  ctx.http.addFastRoute('GET', '/turncredential', credentialHandler(credentials, { apiKeys, limitPerMinute: rateLimitPerMinute }));
  ctx.http.addRoutes(rotateRoute(credentials, ctx.logger.child({ component: 'credentials' })));
  return credentials;
}
