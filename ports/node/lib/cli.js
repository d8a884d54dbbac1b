'use strict';
// The command line of `gateway run` (cli.md): flags, their environment variables, typed settings out.
// Pure: no I/O. A bad value is a UsageError (exit 2), never a retry.
const { ValueError, parseHost, parsePort, isLoopback } = require('./host');

const VERSION = require('../package.json').version;

/** Bad usage: the binary prints `error: <message>` and a hint to `--help`, and exits 2. */
class UsageError extends Error {}

/** Refusing a non-loopback bind without a token (DOOR-2): exit 7, decided before the bind. */
class NoAuthError extends Error {}

const HELP = `Usage: gateway run [OPTIONS]

Takes the gateway lock (the bound port is the lock) and serves on it until SIGTERM, SIGINT or SIGHUP.

Options:
  --host ADDR                  literal IPv4/IPv6 address, or localhost (= 127.0.0.1) [env: GATEWAY_HOST] [default: 127.0.0.1]
  -p, --port N                 0-65535; 0 lets the OS choose [env: GATEWAY_PORT] [default: 18789]
  --token TOKEN                the token clients present in connect [env: GATEWAY_TOKEN]
  --token-file PATH            a file holding the token, read after the bind [env: GATEWAY_TOKEN_FILE]
  --allow-origin ORIGIN        a browser origin allowed to upgrade (repeatable) [env: GATEWAY_ALLOW_ORIGINS]
  --handshake-timeout-ms MS    1-600000 [env: GATEWAY_HANDSHAKE_TIMEOUT_MS] [default: 10000]
  --tick-interval-ms MS        10-3600000 [env: GATEWAY_TICK_INTERVAL_MS] [default: 30000]
  --max-connections N          1-100000 [env: GATEWAY_MAX_CONNECTIONS] [default: 256]
  --max-unauthenticated N      1-100000 [env: GATEWAY_MAX_UNAUTHENTICATED] [default: 32]
  -h, --help                   print this help
  -V, --version                print the version
`;

// name -> [label in messages, environment variable, parser]
const integer = (lo, hi) => (text) => {
  if (!/^[0-9]+$/.test(text)) throw new ValueError(text === '' ? 'cannot parse integer from empty string' : 'invalid digit found in string');
  const n = Number(text);
  if (n < lo || n > hi) throw new ValueError(`${text} is not in ${lo}..=${hi}`);
  return n;
};
const nonEmpty = (text) => {
  if (text === '') throw new ValueError('the value must not be empty');
  return text;
};
const FLAGS = {
  host: ['--host <ADDR>', 'GATEWAY_HOST', parseHost],
  port: ['--port <PORT>', 'GATEWAY_PORT', parsePort],
  token: ['--token <TOKEN>', 'GATEWAY_TOKEN', nonEmpty],
  tokenFile: ['--token-file <PATH>', 'GATEWAY_TOKEN_FILE', nonEmpty],
  handshakeTimeoutMs: ['--handshake-timeout-ms <MS>', 'GATEWAY_HANDSHAKE_TIMEOUT_MS', integer(1, 600000)],
  tickIntervalMs: ['--tick-interval-ms <MS>', 'GATEWAY_TICK_INTERVAL_MS', integer(10, 3600000)],
  maxConnections: ['--max-connections <N>', 'GATEWAY_MAX_CONNECTIONS', integer(1, 100000)],
  maxUnauthenticated: ['--max-unauthenticated <N>', 'GATEWAY_MAX_UNAUTHENTICATED', integer(1, 100000)],
};
const NAMES = {
  '--host': 'host', '--port': 'port', '-p': 'port', '--token': 'token', '--token-file': 'tokenFile',
  '--handshake-timeout-ms': 'handshakeTimeoutMs', '--tick-interval-ms': 'tickIntervalMs',
  '--max-connections': 'maxConnections', '--max-unauthenticated': 'maxUnauthenticated',
};
const DEFAULTS = { host: '127.0.0.1', port: '18789', handshakeTimeoutMs: '10000', tickIntervalMs: '30000', maxConnections: '256', maxUnauthenticated: '32' };
const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'debug', 'trace'];

/** Printable form of untrusted text: control characters escaped (never raw on a terminal). */
function shown(text) {
  return JSON.stringify(text).slice(1, -1).replace(/'/g, "\\'");
}

/** Splits argv into raw flag values; `--flag=value` and `--flag value` alike. */
function collect(args) {
  const raw = {};
  const origins = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '-h' || arg === '--help') return { help: true };
    if (arg === '-V' || arg === '--version') return { version: true };
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const name = flag === '--allow-origin' ? 'allowOrigin' : NAMES[flag];
    if (!name) throw new UsageError(`unexpected argument '${shown(arg)}' found`);
    let value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    const label = name === 'allowOrigin' ? '--allow-origin <ORIGIN>' : FLAGS[name][0];
    if (value === undefined) throw new UsageError(`a value is required for '${label}' but none was supplied`);
    if (name === 'allowOrigin') origins.push(value);
    else if (name in raw) throw new UsageError(`the argument '${label}' cannot be used multiple times`);
    else raw[name] = value;
  }
  return { raw, origins };
}

function value(name, raw, env) {
  const [label, variable, parse] = FLAGS[name];
  const fromFlag = name in raw;
  const text = fromFlag ? raw[name] : env[variable] !== undefined && env[variable] !== '' ? env[variable] : DEFAULTS[name];
  if (text === undefined) return undefined;
  try {
    return parse(text);
  } catch (err) {
    if (!(err instanceof ValueError)) throw err;
    const source = fromFlag || env[variable] === undefined ? '' : ` (from ${variable})`;
    throw new UsageError(`invalid value '${shown(text)}' for '${label}'${source}: ${err.message}`);
  }
}

function normalOrigin(origin) {
  return origin.trim().replace(/\/+$/, '').toLowerCase();
}

/**
 * Parses `gateway <args>` with environment `env`. Returns `{ help: true }`, `{ version: true }` or
 * `{ command: 'run', settings }`; throws UsageError (exit 2) or NoAuthError (exit 7).
 */
function parseCommandLine(args, env) {
  const [command, ...rest] = args;
  if (command === undefined) throw new UsageError("a subcommand is required: 'run'");
  if (command === '-h' || command === '--help') return { help: true };
  if (command === '-V' || command === '--version') return { version: true };
  if (command !== 'run') throw new UsageError(`unrecognized subcommand '${shown(command)}' (this port implements only 'run')`);
  const parsed = collect(rest);
  if (parsed.help || parsed.version) return parsed;
  const { raw, origins } = parsed;
  const settings = {};
  for (const name of Object.keys(FLAGS)) settings[name] = value(name, raw, env);
  const envOrigins = (env.GATEWAY_ALLOW_ORIGINS || '').split(',').filter((o) => o.trim() !== '');
  settings.allowedOrigins = (origins.length ? origins : envOrigins).map(normalOrigin);
  settings.logLevel = LOG_LEVELS.includes(env.GATEWAY_LOG) ? env.GATEWAY_LOG : 'info';
  if (settings.token === undefined && settings.tokenFile === undefined && !isLoopback(settings.host)) {
    throw new NoAuthError(`Refusing to bind gateway to ${settings.host.address} without auth.`);
  }
  return { command: 'run', settings };
}

module.exports = { parseCommandLine, UsageError, NoAuthError, HELP, VERSION, normalOrigin };
