'use strict';
// The Host check (DOOR-7, protocol.md "The front door", Host): a request is served only under this host's
// names. HTTP/1.1 without `Host`, with several, or with a malformed one: 400. A well-formed one whose host
// part (the port is not compared) is `localhost`, a loopback address, the bound address (any address of
// either family when bound to a wildcard) or an allowed item is served; any other: 421.
const net = require('node:net');
const { ipv6Groups, formatIpv6 } = require('./host');

// `[IPv6]` or a run of letters, digits, `-`, `.`, `_`; then optionally `:` and 0 to 5 digits.
const HOST = /^(\[[^\]]*\]|[A-Za-z0-9._-]+)(?::([0-9]{0,5}))?$/;

/** Removes surrounding spaces and tabs, and nothing else (no other white space: protocol.md, Host). */
function trimSpacesAndTabs(text) {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

/** An address in its compared form: an IPv4-mapped IPv6 address is its IPv4 address. */
function comparedAddress(address, family) {
  const mapped = family === 6 ? /^::ffff:([0-9.]+)$/.exec(address) : null;
  return mapped ? { address: mapped[1], family: 4 } : { address, family };
}

/**
 * Splits a host as `Host` carries it (surrounding spaces and tabs removed first) into its host part:
 * `{ name }` (lower case, one trailing `.` removed unless that leaves nothing) or `{ address, family }`
 * (IPv6 canonical without brackets, an IPv4-mapped one as IPv4; `127.0.0.1.` is an address). A port of at
 * most 65535 (5 digits at most, possibly none) is allowed and ignored. Returns null when malformed.
 * There are no label or length rules: `a..b`, `-a` and `.` are names.
 */
function parseHostValue(text) {
  const m = HOST.exec(trimSpacesAndTabs(text));
  if (m === null) return null;
  const [, host, port] = m;
  if (port !== undefined && port !== '' && Number(port) > 65535) return null;
  if (host.startsWith('[')) {
    const inner = host.slice(1, -1);
    if (inner.includes('%') || !net.isIPv6(inner)) return null;
    return comparedAddress(formatIpv6(ipv6Groups(inner)), 6);
  }
  const lower = host.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const part = lower.length > 1 && lower.endsWith('.') ? lower.slice(0, -1) : lower;
  if (net.isIPv4(part)) return { address: part, family: 4 };
  return { name: part };
}

function loopbackAddress({ address, family }) {
  return family === 4 ? address.startsWith('127.') : address === '::1';
}

/**
 * Judges a request's `Host` fields (`values`: every `Host` header's value, in order) for an HTTP
 * `version` ('1.0' or '1.1'). Returns null when it may be served, else 400 or 421. `bound` is the
 * settings' host (`{ address, family }`), `allowed` the allowed items (as parseHostValue gives them).
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
  if (host.address === comparedAddress(bound.address, bound.family).address) return null;
  return allowed.some((a) => a.address === host.address) ? null : 421;
}

module.exports = { checkHost, parseHostValue, trimSpacesAndTabs };
