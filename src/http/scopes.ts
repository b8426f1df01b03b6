import type { ApiScope } from '../config/schema.js';

/**
 * Every protected route and the scope a key needs for it (README, Security). Routes declare their
 * scope where they are mounted (`guard('usage')`); this table says the same for the CLI (which
 * picks a configured key holding the scope) and the tests, and a unit test keeps the two equal.
 */
export const ROUTE_SCOPES: readonly { method: string; path: string; scope: ApiScope }[] = [
  { method: 'GET', path: '/turncredential', scope: 'credentials' },
  { method: 'POST', path: '/turncredential/rotate', scope: 'control' },
  { method: 'POST', path: '/turncredential/revoke', scope: 'control' },
  { method: 'GET', path: '/sessions', scope: 'usage' },
  { method: 'POST', path: '/sessions/:id/disconnect', scope: 'control' },
  { method: 'POST', path: '/clients/:clientId/revoke', scope: 'control' },
  { method: 'DELETE', path: '/clients/:clientId/revoke', scope: 'control' },
  { method: 'GET', path: '/usage', scope: 'usage' },
  { method: 'GET', path: '/allocations', scope: 'usage' },
  { method: 'GET', path: '/clients/:clientId/quota', scope: 'usage' },
  { method: 'POST', path: '/drain', scope: 'admin' },
  { method: 'POST', path: '/drain/cancel', scope: 'admin' },
  { method: 'GET', path: '/tls', scope: 'admin' },
  { method: 'POST', path: '/tls/reload', scope: 'admin' },
];

/** /health and /metrics with http.protectHealth set. */
export const HEALTH_SCOPE: ApiScope = 'usage';

const patterns = ROUTE_SCOPES.map((r) => ({
  ...r,
  re: new RegExp(`^${r.path.replace(/:[A-Za-z]+/g, '[^/]+')}$`),
}));

/** The scope a request to `method pathname` needs; null for an open or unknown route. */
export function scopeFor(method: string, pathname: string): ApiScope | null {
  const p = pathname.split('?')[0];
  return patterns.find((r) => r.method === method && r.re.test(p))?.scope ?? null;
}
