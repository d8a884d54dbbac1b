'use strict';
// The Host check (DOOR-7): a request is served only under this host's names. HTTP/1.1 without `Host`,
// with several, or with a malformed one: 400. A well-formed one whose host part (case-insensitive, one
// trailing dot ignored, the port not compared) is `localhost`, a loopback address, the bound address (any
// address when bound to the wildcard) or an allowed name is served; any other: 421.
const net = require('node:net');
const { ipv6Groups, formatIpv6 } = require('./host');

const LABEL = /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** A host name: dot-separated labels of letters, digits, `-` and `_`, at most 253 characters. */
function isName(text) {
  return text.length > 0 && text.length <= 253 && text.split('.').every((label) => LABEL.test(label));
}

/**
 * Splits `name`, `IPv4` or `[IPv6]`, each with an optional `:port` (digits, at most 65535), into the
 * host part in its compared form: lower case, one trailing dot removed, IPv6 canonical without brackets.
 * Returns `{ name }` or `{ address, family }`, or null when malformed. `bareIpv6` also accepts an
 * unbracketed IPv6 address (for `--allow-host`).
 */
function parseHostValue(text, { bareIpv6 = false } = {}) {
  if (bareIpv6 && !text.startsWith('[') && net.isIPv6(text) && !text.includes('%')) {
    return { address: formatIpv6(ipv6Groups(text)), family: 6 };
  }
  let host = text;
  let port = null;
  const m = /^(\[[^\]]*\]|[^:[\]]*)(?::([0-9]*))?$/.exec(text);
  if (m === null) return null;
  [, host, port] = m;
  if (port !== undefined && (port === '' || Number(port) > 65535)) return null;
  if (host.startsWith('[')) {
    const inner = host.slice(1, -1);
    if (inner.includes('%') || !net.isIPv6(inner)) return null;
    return { address: formatIpv6(ipv6Groups(inner)), family: 6 };
  }
  if (net.isIPv4(host)) return { address: host, family: 4 };
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (!isName(name)) return null;
  return { name: name.replace(/[A-Z]/g, (c) => c.toLowerCase()) };
}

function loopbackAddress({ address, family }) {
  if (family === 4) return address.startsWith('127.');
  return address === '::1' || /^::ffff:127\./.test(address);
}

/**
 * Judges a request's `Host` fields (`values`: every `Host` header's value, in order) for an HTTP
 * `version` ('1.0' or '1.1'). Returns null when it may be served, else 400 or 421. `bound` is the
 * settings' host (`{ address, family }`), `allowed` the allowed names (as parseHostValue gives them).
 */
function checkHost(values, version, bound, allowed) {
  if (values.length === 0) return version === '1.0' ? null : 400;
  if (values.length > 1) return 400;
  const host = parseHostValue(values[0]);
  if (host === null) return 400;
  if (host.name !== undefined) {
    if (host.name === 'localhost') return null;
    return allowed.some((a) => a.name === host.name) ? null : 421;
  }
  if (loopbackAddress(host)) return null;
  if (bound.address === '0.0.0.0' || bound.address === '::') return null;
  if (host.address === bound.address) return null;
  return allowed.some((a) => a.address === host.address) ? null : 421;
}

module.exports = { checkHost, parseHostValue };
