#!/usr/bin/env node
'use strict';
// `gateway run` for Node.js, written from spec/ (cli.md, "Sequence"). This file owns the command line,
// every line printed and every exit code; lib/ holds the lock, the server and the protocol.
const fs = require('node:fs');
const { parseCommandLine, UsageError, NoAuthError, BadLogLevel, HELP, VERSION } = require('./lib/cli');
const { acquireGatewayLock, GatewayLockError } = require('./lib/lock');

/** Writes a line synchronously; a closed stdout or stderr is never fatal (CLI-4). */
function writeLine(fd, text) {
  try {
    fs.writeSync(fd, `${text}\n`);
  } catch (err) {
    // A non-blocking descriptor that is full: let the stream queue it. Anything else (EPIPE: nobody
    // reads it) is dropped; the exit code, or the held port, still says what happened.
    if (err.code !== 'EAGAIN') return;
    const stream = fd === 1 ? process.stdout : process.stderr;
    stream.on('error', () => {});
    stream.write(`${text}\n`);
  }
}

/** A `warn` diagnostic (the ephemeral-range advice): shown unless GATEWAY_LOG is `error` or `off`. */
function warn(settings, line) {
  if (line && !['off', 'error'].includes(settings.logLevel)) writeLine(2, line);
}

function exit(code, fd, text) {
  if (text !== undefined) writeLine(fd, text);
  process.exit(code);
}

function parse() {
  try {
    return parseCommandLine(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof UsageError) {
      exit(2, 2, `error: ${err.message}\n\nUsage: gateway run [OPTIONS]\n\nFor more information, try '--help'.`);
    }
    if (err instanceof BadLogLevel) exit(2, 2, err.message);
    if (err instanceof NoAuthError) exit(7, 2, err.message);
    throw err;
  }
}

/** ERR-1 or ERR-2 as the first stderr line; after ERR-1, the holder (OPS-1): exit 5 for a live gateway. */
async function refuse(err, settings) {
  writeLine(2, String(err));
  if (!err.held) exit(err.exitCode);
  const { describeHolder, ephemeralWarning } = require('./lib/holder');
  const holder = await describeHolder(settings.host, settings.port);
  for (const line of holder.lines) writeLine(2, line);
  warn(settings, ephemeralWarning(settings.port));
  exit(holder.live ? 5 : 3);
}

async function run(settings) {
  // Step 2: the bind is the first observable act (LOCK-3).
  let listener;
  try {
    listener = await acquireGatewayLock(settings.host.address, settings.port);
  } catch (err) {
    if (err instanceof GatewayLockError) await refuse(err, settings);
    throw err;
  }
  // Everything below runs in the same turn of the event loop as the bind's completion, so no connection
  // is accepted before the gateway handles it.
  const { resolveToken, TokenError } = require('./lib/token');
  const { Gateway } = require('./lib/gateway');
  const { ephemeralWarning } = require('./lib/holder');
  const port = listener.address().port;
  let auth;
  try {
    auth = resolveToken(settings, process.env);
  } catch (err) {
    if (err instanceof TokenError) exit(1, 2, err.message);
    throw err;
  }
  warn(settings, ephemeralWarning(settings.port));
  if (auth.notice) writeLine(2, auth.notice);
  const gateway = new Gateway(listener, settings, auth, {
    onReleased: () => process.exit(0),
    log: (line) => writeLine(2, line),
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => gateway.shutdown());
  writeLine(1, `listening on ws://${settings.host.url}:${port}`);
}

const parsed = parse();
if (parsed.help) exit(0, 1, HELP.trimEnd());
if (parsed.version) exit(0, 1, `gateway ${VERSION} (Node.js port)`);
run(parsed.settings);
