'use strict';
// Token sources (DOOR-5, DOOR-6), put in force after the bind: the value given, a token file (trimmed), or
// the stored token of the profile: one file named `token` whatever the port, reused if it exists, else a
// fresh 32-byte token linked into place only while the name is free (0600, directory 0700, never following
// a symlink, never in a shared temporary directory).
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { osErrorText } = require('./lock');

/** The token could not be put in force: the binary prints the message and exits 1. */
class TokenError extends Error {}

const NOWHERE =
  'no token given and nowhere private to store one: neither XDG_STATE_HOME nor HOME is set (give --token or --token-file)';

/** Where the stored token of a gateway without a profile lives, or null when there is no private place. */
function storedTokenPath(env) {
  if (path.isAbsolute(env.XDG_STATE_HOME || '')) return path.join(env.XDG_STATE_HOME, 'gateway-lock', 'token');
  if (env.HOME) return path.join(env.HOME, '.local', 'state', 'gateway-lock', 'token');
  return null;
}

// Unicode's White_Space property (as Rust's str::trim; JavaScript's trim() differs: it takes U+FEFF and
// leaves U+0085).
const WHITE_SPACE = '[\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]';
const SURROUNDING_WHITE_SPACE = new RegExp(`^${WHITE_SPACE}+|${WHITE_SPACE}+$`, 'g');
/** `text` without surrounding Unicode White_Space (protocol.md, "The front door", Token). */
const trimWhiteSpace = (text) => text.replace(SURROUNDING_WHITE_SPACE, '');
const STORED_MAX_BYTES = 65536;

function readTokenFile(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TokenError(`cannot read token file ${file}: ${osErrorText(err)}`);
  }
  const token = trimWhiteSpace(text);
  if (token === '') throw new TokenError(`token file ${file} is empty`);
  return token;
}

const storeError = (file, why) => new TokenError(`cannot store generated token in ${file}: ${why}`);

/** The stored token at `file` (no symlink followed, mode set to 0600, its first 64 KiB read, trimmed), or null if there is none. */
function readStored(file) {
  let fd;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw storeError(file, osErrorText(err));
  }
  try {
    fs.fchmodSync(fd, 0o600);
    const buffer = Buffer.alloc(STORED_MAX_BYTES);
    let length = 0;
    for (let n; length < buffer.length && (n = fs.readSync(fd, buffer, length, buffer.length - length, null)) > 0; ) length += n;
    const token = trimWhiteSpace(buffer.subarray(0, length).toString('utf8'));
    if (token === '') throw storeError(file, 'the stored token is empty');
    return token;
  } catch (err) {
    if (err instanceof TokenError) throw err;
    throw storeError(file, osErrorText(err));
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes `token` to a private temporary file beside `file` and links it into place if the name is free. */
function storeNew(file, token) {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.token.${process.pid}.${crypto.randomBytes(6).toString('hex')}`);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW;
    const fd = fs.openSync(temp, flags, 0o600);
    try {
      fs.fchmodSync(fd, 0o600);
      fs.writeSync(fd, `${token}\n`);
    } finally {
      fs.closeSync(fd);
    }
    fs.linkSync(temp, file);
    return true;
  } catch (err) {
    if (err.code === 'EEXIST') return false; // another gateway stored one first: use it
    throw storeError(file, osErrorText(err));
  } finally {
    try {
      fs.unlinkSync(temp);
    } catch {
      // never created
    }
  }
}

/** The stored token of the profile (DOOR-6): `{ token, notice }`. */
function storedToken(env) {
  const file = storedTokenPath(env);
  if (file === null) throw new TokenError(NOWHERE);
  for (let attempt = 0; attempt < 2; attempt++) {
    const existing = readStored(file);
    if (existing !== null) {
      return { token: existing, notice: `gateway: no token given; using the one stored in ${file} (mode 0600)` };
    }
    const token = crypto.randomBytes(32).toString('hex');
    if (storeNew(file, token)) {
      return { token, notice: `gateway: no token given; generated one and stored it in ${file} (mode 0600)` };
    }
  }
  throw storeError(file, 'the file appeared and disappeared again');
}

/**
 * Puts the token in force: `{ token, source, notice }`, where `source` is `value`, `file` or `generated`
 * and `notice` a line for stderr (the path, never the token) or null.
 */
function resolveToken(settings, env) {
  if (settings.token !== undefined) return { token: settings.token, source: 'value', notice: null };
  if (settings.tokenFile !== undefined) return { token: readTokenFile(settings.tokenFile), source: 'file', notice: null };
  return { ...storedToken(env), source: 'generated' };
}

module.exports = { trimWhiteSpace, resolveToken, TokenError, storedTokenPath };
