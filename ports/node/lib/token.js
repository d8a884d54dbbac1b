'use strict';
// Token sources (DOOR-5), put in force after the bind: the value given, a token file (trimmed), or a
// generated 32-byte token stored privately (0600, directory 0700, never following a symlink).
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { osErrorText } = require('./lock');

/** The token could not be put in force: the binary prints the message and exits 1. */
class TokenError extends Error {}

/** Where a generated token for `port` is stored. */
function generatedTokenPath(port, env) {
  const base = path.isAbsolute(env.XDG_STATE_HOME || '')
    ? env.XDG_STATE_HOME
    : env.HOME
      ? path.join(env.HOME, '.local', 'state')
      : os.tmpdir();
  return path.join(base, 'gateway-lock', `token-${port}`);
}

function readTokenFile(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new TokenError(`cannot read token file ${file}: ${osErrorText(err)}`);
  }
  const token = text.trim();
  if (token === '') throw new TokenError(`token file ${file} is empty`);
  return token;
}

function storeGeneratedToken(file, token) {
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW;
    const fd = fs.openSync(file, flags, 0o600);
    try {
      fs.fchmodSync(fd, 0o600);
      fs.writeSync(fd, `${token}\n`);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw new TokenError(`cannot store generated token in ${file}: ${osErrorText(err)}`);
  }
}

/**
 * Puts the token in force for a gateway bound on `port`: `{ token, source, notice }`, where `source` is
 * `value`, `file` or `generated` and `notice` a line for stderr (the path, never the token) or null.
 */
function resolveToken(settings, port, env) {
  if (settings.token !== undefined) return { token: settings.token, source: 'value', notice: null };
  if (settings.tokenFile !== undefined) return { token: readTokenFile(settings.tokenFile), source: 'file', notice: null };
  const file = generatedTokenPath(port, env);
  const token = crypto.randomBytes(32).toString('hex');
  storeGeneratedToken(file, token);
  const notice = `gateway: no token given; generated one and stored it in ${file} (mode 0600)`;
  return { token, source: 'generated', notice };
}

module.exports = { resolveToken, TokenError, generatedTokenPath };
