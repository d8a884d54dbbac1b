'use strict';
// The lock itself (LOCK-*, ERR-*): bind and listen, exclusively, on exactly the address asked for.
// libuv sets SO_REUSEADDR (REL-2: TIME_WAIT of a dead holder never blocks) and never SO_REUSEPORT unless
// asked (LOCK-5), and creates sockets close-on-exec (REL-3). IPv6 sockets are IPv6-only (LOCK-4). `exclusive: true` keeps the cluster module
// from sharing the handle with workers.
const net = require('node:net');
const util = require('node:util');
const { parseHost } = require('./host');

/** Attempts of a `listen` refused with EADDRINUSE before it is reported (LOCK-6). */
const LISTEN_ATTEMPTS = 4;

/**
 * The lock was not taken. `message` is the spec's text byte for byte (errors.md), so `String(err)` is
 * the exact stderr line `GatewayLockError: <message>`. `held` is true for ERR-1 (EADDRINUSE: exit 3),
 * false for ERR-2 (any other failure: exit 4); `cause` is the system error.
 */
class GatewayLockError extends Error {
  constructor(message, { held, cause }) {
    super(message, { cause });
    this.name = 'GatewayLockError';
    this.held = held;
    this.exitCode = held ? 3 : 4;
  }
}

/** The operating system's description of a system error, e.g. `address not available (EADDRNOTAVAIL)`. */
function osErrorText(err) {
  const entry = typeof err.errno === 'number' ? util.getSystemErrorMap().get(err.errno) : undefined;
  return entry ? `${entry[1]} (${entry[0]})` : String(err.message || err);
}

function lockError(err, url, port) {
  const where = `ws://${url}:${port}`;
  if (err.code === 'EADDRINUSE') {
    return new GatewayLockError(`another gateway instance is already listening on ${where}`, { held: true, cause: err });
  }
  return new GatewayLockError(`failed to bind gateway socket on ${where}: ${osErrorText(err)}`, { held: false, cause: err });
}

function listenOnce(server, { address, family }, port) {
  return new Promise((resolve, reject) => {
    const onError = (err) => {
      server.removeListener('listening', onListening);
      reject(err);
    };
    const onListening = () => {
      server.removeListener('error', onError);
      resolve(server);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    // Every IPv6 socket is IPv6-only (cli.md, "Hosts"): `::` never covers IPv4, a mapped address is refused.
    server.listen({ host: address, port, exclusive: true, ipv6Only: family === 6 });
  });
}

/**
 * Takes the gateway lock: binds and listens on `host:port` and resolves to the listening server, or
 * rejects with a GatewayLockError. `host` is a literal IPv4/IPv6 address (`::1` or `[::1]`) or
 * `localhost` (127.0.0.1 only); it is never resolved and no other address is tried. `port` is 0-65535
 * (0: the OS chooses; read it from `server.address().port`). Pass `server` (an unbound `net.Server` or
 * `http.Server`) to have that server hold the lock; by default a new `net.Server` is made.
 * Nothing is read, written or printed: the bind is the caller's first observable act.
 */
async function acquireGatewayLock(host, port, { server = net.createServer() } = {}) {
  const parsed = parseHost(host);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port ${port} is not in 0..=65535`);
  for (let attempt = 1; ; attempt++) {
    try {
      return await listenOnce(server, parsed, port);
    } catch (err) {
      // Linux can refuse two simultaneous listens on one port; a real holder refuses every attempt at once.
      if (err.code === 'EADDRINUSE' && attempt < LISTEN_ATTEMPTS) continue;
      throw lockError(err, parsed.url, port);
    }
  }
}

module.exports = { acquireGatewayLock, GatewayLockError, osErrorText };
