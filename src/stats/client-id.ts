const isDigits = (s: string) => s.length > 0 && /^[0-9]+$/.test(s);

/** The client id a username is accounted under: after the first ':' of a REST-style name (`<expiry>:<id>`). */
export function clientIdOf(username: string): string {
  const colon = username.indexOf(':');
  return colon > 0 && isDigits(username.slice(0, colon)) ? username.slice(colon + 1) : username;
}
