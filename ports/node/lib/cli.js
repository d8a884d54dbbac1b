'use strict';
// The command line of `gateway run` (cli.md): flags, their environment variables, typed settings out.
// Pure: no I/O. A bad value is a UsageError (exit 2), never a retry.
const { ValueError, parseHost, parsePort, parseInteger, isLoopback } = require('./host');
const { parseHostValue, trimSpacesAndTabs } = require('./hostcheck');
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
  --allow-origin ORIGIN        browser origins allowed to upgrade (repeatable, comma-separated) [env: GATEWAY_ALLOW_ORIGINS]
  --allow-host HOST            names or addresses ([IPv6] bracketed) requests may carry in Host besides loopback and the bound address (repeatable, comma-separated) [env: GATEWAY_ALLOW_HOSTS]
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
/** An `--allow-host` item: a host as a `Host` header carries it (IPv6 bracketed), a `:port` ignored. */
const allowHost = (text) => {
  const host = parseHostValue(text);
  if (host === null) throw new ValueError('not a host as a Host header carries it (a name, an IPv4 address or a bracketed IPv6 address, optionally with :port)');
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
/** Flags that may be repeated, their values split at commas into lists: name -> [label, environment variable]. */
const LISTS = {
  allowOrigin: ['--allow-origin <ORIGIN>', 'GATEWAY_ALLOW_ORIGINS'],
  allowHost: ['--allow-host <HOST>', 'GATEWAY_ALLOW_HOSTS'],
};
/** How each list item is taken: an origin in its compared form (DOOR-3); a host as `Host` carries it (DOOR-7). */
const LIST_PARSERS = { allowOrigin: (text) => normalOrigin(text), allowHost };
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

/** The flag named by `arg` and the value written in it (`--flag=value`, `-pN`, `-p=N`), if any. */
function splitFlag(arg) {
  if (arg.startsWith('--')) {
    const eq = arg.indexOf('=');
    return eq > 0 ? { flag: arg.slice(0, eq), inline: arg.slice(eq + 1) } : { flag: arg };
  }
  if (arg.startsWith('-p') && arg.length > 2) return { flag: '-p', inline: arg.slice(arg[2] === '=' ? 3 : 2) };
  return { flag: arg };
}

/**
 * A flag's value given as the next argument: one that begins with `-` is read as a flag, not a value
 * (cli.md, CLI-2), except a negative number for `--port`/`-p` (then a bad port).
 */
function nextValue(name, label, next) {
  if (next === undefined) throw new UsageError(`a value is required for '${label}' but none was supplied`);
  if (next.startsWith('-') && !(name === 'port' && /^-[0-9]+$/.test(next))) {
    if (NAMES[splitFlag(next).flag] || ['-h', '--help', '-V', '--version'].includes(next)) {
      throw new UsageError(`a value is required for '${label}' but none was supplied`);
    }
    throw new UsageError(`unexpected argument '${shown(next)}' found`);
  }
  return next;
}

/**
 * Reads argv from left to right (cli.md, CLI-2): `--help`/`--version` end the reading; a bad flag or value
 * met before them is the usage error. Returns `{ help }`, `{ version }` or `{ values, lists }`: each flag's
 * parsed value, and each list flag's parsed items (present only when the flag was given).
 */
function collect(args) {
  const values = {};
  const lists = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === '-h' || arg === '--help') return { help: true };
    if (arg === '-V' || arg === '--version') return { version: true };
    const { flag, inline } = splitFlag(arg);
    const name = NAMES[flag];
    if (!name) throw new UsageError(`unexpected argument '${shown(arg)}' found`);
    const label = (LISTS[name] || FLAGS[name])[0];
    const text = inline !== undefined ? inline : nextValue(name, label, args[++i]);
    if (name in LISTS) lists[name] = (lists[name] || []).concat(listItems(name, text, false));
    else if (name in values) throw new UsageError(`the argument '${label}' cannot be used multiple times`);
    else values[name] = parsed(name, text, false);
  }
  return { values, lists };
}

/** `text` parsed as flag `name`'s value; a bad value is a UsageError naming the flag (and the variable). */
function parsed(name, text, fromVariable) {
  const [label, variable, parse] = FLAGS[name];
  try {
    return parse(text);
  } catch (err) {
    if (!(err instanceof ValueError)) throw err;
    const source = fromVariable ? ` (from ${variable})` : '';
    throw new UsageError(`invalid value '${shown(text)}' for '${label}'${source}: ${err.message}`);
  }
}

/**
 * A flag's value, else its variable's (a set variable is a value even when empty: CLI-3), else the
 * default. A bad value is a UsageError naming the flag.
 */
function value(name, values, env) {
  if (name in values) return values[name];
  const variable = FLAGS[name][1];
  if (env[variable] !== undefined) return parsed(name, env[variable], true);
  return DEFAULTS[name] === undefined ? undefined : parsed(name, DEFAULTS[name], false);
}

/**
 * The items of one value of a list (cli.md, "Environment variables", Lists): split at every `,`, each
 * with surrounding spaces and tabs removed, empty items skipped, the rest parsed.
 */
function listItems(name, text, fromVariable) {
  const [label, variable] = LISTS[name];
  const parse = LIST_PARSERS[name];
  return text.split(',').map(trimSpacesAndTabs).filter((item) => item !== '').map((item) => {
    try {
      return parse(item);
    } catch (err) {
      if (!(err instanceof ValueError)) throw err;
      const source = fromVariable ? ` (from ${variable})` : '';
      throw new UsageError(`invalid value '${shown(item)}' for '${label}'${source}: ${err.message}`);
    }
  });
}

/** A list from its flags when given (its variable then not looked at), else from its variable (unset: empty). */
function list(name, lists, env) {
  if (name in lists) return lists[name];
  const text = env[LISTS[name][1]];
  return text === undefined ? [] : listItems(name, text, true);
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

/** An origin in its compared form (DOOR-3): surrounding spaces and tabs and every trailing `/` removed, ASCII lower case. */
function normalOrigin(origin) {
  return trimSpacesAndTabs(origin).replace(/\/+$/, '').replace(/[A-Z]/g, (c) => c.toLowerCase());
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
  const read = collect(rest);
  if (read.help || read.version) return read;
  const { values, lists } = read;
  // The environment only after the whole command line was read (CLI-2).
  const level = logLevel(env);
  if (env.GATEWAY_PROFILE !== undefined) {
    throw new UsageError(`invalid value '${shown(env.GATEWAY_PROFILE)}' for 'GATEWAY_PROFILE': this port has no profiles; unset GATEWAY_PROFILE`);
  }
  const settings = {};
  for (const name of Object.keys(FLAGS)) settings[name] = value(name, values, env);
  settings.allowedOrigins = list('allowOrigin', lists, env);
  settings.allowedHosts = list('allowHost', lists, env);
  settings.logLevel = level;
  if (settings.token === undefined && settings.tokenFile === undefined && !isLoopback(settings.host)) {
    throw new NoAuthError(`Refusing to bind gateway to ${settings.host.address} without auth.`);
  }
  return { command: 'run', settings };
}

module.exports = { parseCommandLine, UsageError, NoAuthError, BadLogLevel, HELP, VERSION, normalOrigin };
