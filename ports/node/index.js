'use strict';
/**
 * gateway-lock for Node.js: the bound TCP port is the single-instance lock.
 *
 *   const { acquireGatewayLock, GatewayLockError } = require('./ports/node');
 *   const server = await acquireGatewayLock('127.0.0.1', 18789);   // or { server: http.createServer(app) }
 *
 * `acquireGatewayLock(host, port, { server })` resolves to the listening server, or rejects with a
 * `GatewayLockError` whose `String(err)` is the spec's line byte for byte and whose `exitCode` is 3
 * (ERR-1, the port is held) or 4 (ERR-2, any other bind failure).
 */
const { acquireGatewayLock, GatewayLockError } = require('./lib/lock');

module.exports = { acquireGatewayLock, GatewayLockError };
