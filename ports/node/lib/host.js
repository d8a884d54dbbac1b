'use strict';
// Host and port values (CLI-2, LOCK-4): a host is a literal IPv4 or IPv6 address, or `localhost`, which
// means 127.0.0.1 only. Names are never resolved. The printed form of a host is canonical, so that it
// round-trips (FUZZ-1): IPv6 as in RFC 5952, an IPv4-mapped address as `::ffff:a.b.c.d`.
const net = require('node:net');

/** Why a host or port value was refused; the command line turns it into a usage error (exit 2). */
class ValueError extends Error {}

/** Sixteen-bit groups of a valid IPv6 literal (no zone). */
function ipv6Groups(text) {
  let head = text;
  const tail = [];
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (net.isIPv4(last)) {
    const [a, b, c, d] = last.split('.').map(Number);
    tail.push((a << 8) | b, (c << 8) | d);
    head = text.slice(0, lastColon + 1);
    if (!head.endsWith('::')) head = head.slice(0, -1);
  }
  const parse = (part) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const halves = head.split('::');
  const left = parse(halves[0]);
  const right = halves.length > 1 ? parse(halves[1]).concat(tail) : [];
  if (halves.length === 1) left.push(...tail);
  const zeros = new Array(8 - left.length - right.length).fill(0);
  return left.concat(zeros, right);
}

/** RFC 5952 text of eight groups; an IPv4-mapped address keeps its dotted tail. */
function formatIpv6(groups) {
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi, lo] = [groups[6], groups[7]];
    return `::ffff:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.len < 2) return hex.join(':');
  return `${hex.slice(0, best.at).join(':')}::${hex.slice(best.at + best.len).join(':')}`;
}

/**
 * Parses a `--host` value. Returns `{ address, family, url }`: the canonical literal (`::1`), 4 or 6, and
 * the form used in URLs and messages (`[::1]`). Throws ValueError for anything else.
 */
function parseHost(text) {
  if (text === '') throw new ValueError('the host is empty');
  if (text.replace(/[A-Z]/g, (c) => c.toLowerCase()) === 'localhost') return hostOf('127.0.0.1', 4);
  const inner = text.length > 2 && text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (net.isIPv4(inner)) return hostOf(inner, 4);
  if (!inner.includes('%') && net.isIPv6(inner)) return hostOf(formatIpv6(ipv6Groups(inner)), 6);
  throw new ValueError('not a literal IP address (or localhost); names are never resolved');
}

function hostOf(address, family) {
  return { address, family, url: family === 6 ? `[${address}]` : address };
}

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback (DOOR-2). */
function isLoopback(host) {
  if (host.family === 4) return host.address.startsWith('127.');
  return host.address === '::1' || host.address.startsWith('::ffff:127.');
}

/**
 * Parses a port (cli.md): ASCII decimal digits, optionally after one `+`, leading zeros allowed, 0-65535.
 * Nothing is trimmed. Throws ValueError otherwise.
 */
function parsePort(text) {
  return parseInteger(text, 0, 65535);
}

/** An integer in lo..=hi written as ASCII digits after an optional `+`; ValueError names why not. */
function parseInteger(text, lo, hi) {
  if (text === '') throw new ValueError('cannot parse integer from empty string');
  const digits = text.startsWith('+') ? text.slice(1) : text;
  if (!/^[0-9]+$/.test(digits)) {
    if (/^-[0-9]+$/.test(text)) throw new ValueError(`${text} is not in ${lo}..=${hi}`);
    throw new ValueError('invalid digit found in string');
  }
  const value = Number(digits);
  if (value < lo || value > hi) throw new ValueError(`${text} is not in ${lo}..=${hi}`);
  return value;
}

module.exports = { ValueError, parseHost, parsePort, parseInteger, isLoopback, ipv6Groups, formatIpv6 };
