'use strict';
// The command line of `gateway run` (cli.md): flags, their environment variables, typed settings out.
// Pure: no I/O. A bad value is a UsageError (exit 2), never a retry.
const { ValueError, parseHost, parsePort, parseInteger, isLoopback } = require('./host');
const { parseHostValue } = require('./hostcheck');
const { safeText } = require('./text');

const VERSION = require('../package.json').version;

/** Bad usage: the binary prints `error: <message>` and a hint to `--help`, and exits 2. */
class UsageError extends Error {}

/** Refusing a non-loopback bind without a token (DOOR-2): exit 7, decided before the bind. */
class NoAuthError extends Error {}

/** GATEWAY_LOG holds no level (CLI-3): the binary prints the message as it is, alone, and exits 2. */
class BadLogLevel extends Error {}

const HELP = `Usage: gateway run [OPTIONS]

Takes the gateway lock (the bound port is the lock) and serves on it until SIGTERM, SIGINT or SIGHUP.

Options:
  --host ADDR                  literal IPv4/IPv6 address, or localhost (= 127.0.0.1) [env: GATEWAY_HOST] [default: 127.0.0.1]
  -p, --port N                 0-65535; 0 lets the OS choose [env: GATEWAY_PORT] [default: 18789]
  --token TOKEN                the token clients present in connect [env: GATEWAY_TOKEN]
  --token-file PATH            a file holding the token, read after the bind [env: GATEWAY_TOKEN_FILE]
  --allow-origin ORIGIN        a browser origin allowed to upgrade (repeatable) [env: GATEWAY_ALLOW_ORIGINS]
  --allow-host HOST            a name requests may carry in Host besides loopback and the bound address (repeatable) [env: GATEWAY_ALLOW_HOSTS]
  --handshake-timeout-ms MS    1-600000 [env: GATEWAY_HANDSHAKE_TIMEOUT_MS] [default: 10000]
  --tick-interval-ms MS        10-3600000 [env: GATEWAY_TICK_INTERVAL_MS] [default: 30000]
  --max-connections N          1-100000 [env: GATEWAY_MAX_CONNECTIONS] [default: 256]
  --max-unauthenticated N      1-100000 [env: GATEWAY_MAX_UNAUTHENTICATED] [default: 32]
  -h, --help                   print this help
  -V, --version                print the version
`;

// name -> [label in messages, environment variable, parser]
const integer = (lo, hi) => (text) => parseInteger(text, lo, hi);
const nonEmpty = (text) => {
  if (text === '') throw new ValueError('the value must not be empty');
  return text;
};
/** An `--allow-host` value: a host name or address, a `:port` ignored. */
const allowHost = (text) => {
  const host = parseHostValue(text, { bareIpv6: true });
  if (host === null) throw new ValueError('not a host name or address');
  return host;
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
/** Flags that may be repeated, collected into lists: name -> [label, environment variable (comma-separated)]. */
const LISTS = {
  allowOrigin: ['--allow-origin <ORIGIN>', 'GATEWAY_ALLOW_ORIGINS'],
  allowHost: ['--allow-host <HOST>', 'GATEWAY_ALLOW_HOSTS'],
};
const NAMES = {
  '--allow-origin': 'allowOrigin', '--allow-host': 'allowHost',
  '--host': 'host', '--port': 'port', '-p': 'port', '--token': 'token', '--token-file': 'tokenFile',
  '--handshake-timeout-ms': 'handshakeTimeoutMs', '--tick-interval-ms': 'tickIntervalMs',
  '--max-connections': 'maxConnections', '--max-unauthenticated': 'maxUnauthenticated',
};
const DEFAULTS = { host: '127.0.0.1', port: '18789', handshakeTimeoutMs: '10000', tickIntervalMs: '30000', maxConnections: '256', maxUnauthenticated: '32' };
const LOG_LEVELS = ['off', 'error', 'warn', 'info', 'debug', 'trace'];

/** Printable form of untrusted text (OPS-9): control characters escaped, never raw on a terminal. */
const shown = (text) => safeText(text);

/** Splits argv into raw flag values; `--flag=value` and `--flag value` alike. */
function collect(args) {
  const raw = {};
  const lists = { allowOrigin: [], allowHost: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '-h' || arg === '--help') return { help: true };
    if (arg === '-V' || arg === '--version') return { version: true };
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const name = NAMES[flag];
    if (!name) throw new UsageError(`unexpected argument '${shown(arg)}' found`);
    const value = eq > 0 ? arg.slice(eq + 1) : args[++i];
    const label = (LISTS[name] || FLAGS[name])[0];
    if (value === undefined) throw new UsageError(`a value is required for '${label}' but none was supplied`);
    if (name in lists) lists[name].push(value);
    else if (name in raw) throw new UsageError(`the argument '${label}' cannot be used multiple times`);
    else raw[name] = value;
  }
  return { raw, lists };
}

/** Any `--help`/`--version` in argv wins over everything else, bad values and GATEWAY_LOG included. */
function wantsInfo(args) {
  for (const arg of args) {
    if (arg === '-h' || arg === '--help') return { help: true };
    if (arg === '-V' || arg === '--version') return { version: true };
  }
  return null;
}

/**
 * A flag's value, else its variable's (a set variable is a value even when empty: CLI-3), else the
 * default. A bad value is a UsageError naming the flag.
 */
function value(name, raw, env) {
  const [label, variable, parse] = FLAGS[name];
  const fromFlag = name in raw;
  const text = fromFlag ? raw[name] : env[variable] !== undefined ? env[variable] : DEFAULTS[name];
  if (text === undefined) return undefined;
  try {
    return parse(text);
  } catch (err) {
    if (!(err instanceof ValueError)) throw err;
    const source = fromFlag || env[variable] === undefined ? '' : ` (from ${variable})`;
    throw new UsageError(`invalid value '${shown(text)}' for '${label}'${source}: ${err.message}`);
  }
}

/** A list from its repeated flag, else its comma-separated variable (empty: an empty list). */
function list(name, given, env, parse) {
  const [label, variable] = LISTS[name];
  const fromFlag = given.length > 0;
  const items = fromFlag ? given : (env[variable] || '').split(',').filter((o) => o.trim() !== '');
  return items.map((text) => {
    try {
      return parse(fromFlag ? text : text.trim());
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      const source = fromFlag ? '' : ` (from ${variable})`;
      throw new UsageError(`invalid value '${shown(text)}' for '${label}'${source}: ${err.message}`);
    }
  });
}

/** GATEWAY_LOG (CLI-3): one of six levels in any ASCII case, unset means info; anything else is exit 2. */
function logLevel(env) {
  const text = env.GATEWAY_LOG;
  if (text === undefined) return 'info';
  const level = text.replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (LOG_LEVELS.includes(level)) return level;
  throw new BadLogLevel(
    `error: invalid value '${shown(text)}' for 'GATEWAY_LOG': expected one of off, error, warn, info, debug, trace`,
  );
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
  const info = wantsInfo(rest);
  if (info) return info;
  const level = logLevel(env);
  const { raw, lists } = collect(rest);
  const settings = {};
  for (const name of Object.keys(FLAGS)) settings[name] = value(name, raw, env);
  if (env.GATEWAY_PROFILE === '') throw new UsageError("invalid value '' for '--profile <NAME>' (from GATEWAY_PROFILE): the value must not be empty");
  settings.allowedOrigins = list('allowOrigin', lists.allowOrigin, env, normalOrigin);
  settings.allowedHosts = list('allowHost', lists.allowHost, env, allowHost);
  settings.logLevel = level;
  if (settings.token === undefined && settings.tokenFile === undefined && !isLoopback(settings.host)) {
    throw new NoAuthError(`Refusing to bind gateway to ${settings.host.address} without auth.`);
  }
  return { command: 'run', settings };
}

module.exports = { parseCommandLine, UsageError, NoAuthError, BadLogLevel, HELP, VERSION, normalOrigin };
