// Library entry: what other programs (signalling servers, tools) import from turn-monitor.
export { App } from './app.js';
export { buildConfig, loadConfig, ConfigError } from './config/load.js';
export type { Config, ConfigInput } from './config/schema.js';
