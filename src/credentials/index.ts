import type { AppContext } from '../context.js';
import type { Subsystem } from '../lifecycle.js';

/** Credential rotation (issue: credentials). Not built yet: turnserver runs with an empty userdb. */
export function createCredentials(_ctx: AppContext): Subsystem | null {
  return null;
}
