'use strict';
// Naming the holder after a refusal (OPS-1), bounded by PROBE_MS in all: the listening socket from
// /proc/net/tcp{,6} (its uid and inode), the process whose descriptors hold that inode, and whether it
// answers GET /healthz as a live gateway. Linux only; elsewhere the holder is "unknown".
const fs = require('node:fs');
const net = require('node:net');
const { ipv6Groups } = require('./host');
const { safeText } = require('./text');

/** Cuts (OPS-9): a holder's command line after 512 characters, a reported profile or version after 64. */
const COMMAND_CHARS = 512;
const NAME_CHARS = 64;

const PROBE_MS = 200;

/** Hex of an address as /proc/net/tcp{,6} prints it: 32-bit words in this machine's (little-endian) order. */
function procHex(bytes) {
  let hex = '';
  for (let i = 0; i < bytes.length; i += 4) hex += Buffer.from(bytes.subarray(i, i + 4)).reverse().toString('hex');
  return hex.toUpperCase();
}

function ipv4Bytes(address) {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address) {
  const groups = ipv6Groups(address);
  const bytes = Buffer.alloc(16);
  groups.forEach((g, i) => bytes.writeUInt16BE(g, 2 * i));
  return bytes;
}

/** The local addresses (in /proc hex, per table) whose listener on the port excludes `host`. */
function coveringAddresses(host) {
  const wild4 = '00000000';
  const wild6 = '0'.repeat(32);
  let v4 = null;
  if (host.family === 4) v4 = host.address;
  else if (host.address.startsWith('::ffff:') && host.address.includes('.')) v4 = host.address.slice(7);
  if (v4 === '0.0.0.0') return { tcp: null, tcp6: null }; // the wildcard meets every listener on the port
  if (v4 !== null) {
    const mapped = Buffer.concat([Buffer.alloc(10), Buffer.from([255, 255]), ipv4Bytes(v4)]);
    return { tcp: [procHex(ipv4Bytes(v4)), wild4], tcp6: [procHex(mapped), wild6] };
  }
  if (host.address === '::') return { tcp: null, tcp6: null };
  return { tcp: [], tcp6: [procHex(ipv6Bytes(host.address)), wild6] };
}

/** The listening socket on the port that excludes `host`: `{ uid, inode }`, or null. */
function findListener(host, port) {
  const want = coveringAddresses(host);
  const portHex = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['tcp', 'tcp6']) {
    let text;
    try {
      text = fs.readFileSync(`/proc/net/${table}`, 'latin1');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      const [addr, p] = f[1].split(':');
      if (p !== portHex || (want[table] !== null && !want[table].includes(addr))) continue;
      return { uid: Number(f[7]), inode: f[9] };
    }
  }
  return null;
}

function holdsInode(pid, inode) {
  const target = `socket:[${inode}]`;
  let fds;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  return fds.some((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === target;
    } catch {
      return false;
    }
  });
}

/** The pid holding `inode`: `{ pid }`, `{ pid: null }` or `{ late: true }` when the deadline passed. */
function findProcess(inode, deadline) {
  for (const name of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    if (Date.now() > deadline) return { late: true };
    if (holdsInode(name, inode)) return { pid: Number(name) };
  }
  return { pid: null };
}

/** The NUL-separated arguments of /proc/<pid>/cmdline joined by one space, as bytes (they may not be UTF-8). */
function joinArguments(bytes) {
  let end = bytes.length;
  while (end > 0 && bytes[end - 1] === 0) end--;
  const joined = Buffer.from(bytes.subarray(0, end));
  for (let i = 0; i < joined.length; i++) if (joined[i] === 0) joined[i] = 0x20;
  return joined;
}

function processLine(pid) {
  let command = Buffer.from('?');
  let uid = '?';
  let stopped = false;
  try {
    command = joinArguments(fs.readFileSync(`/proc/${pid}/cmdline`));
    uid = /^Uid:\s+(\d+)/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'latin1'))[1];
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    stopped = /^[Tt]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]);
  } catch {
    // the process may have exited meanwhile; say what is known
  }
  return `  holder: pid ${pid} (uid ${uid}${stopped ? ', stopped' : ''}): ${safeText(command, COMMAND_CHARS)}`;
}

/** GET /healthz on the holder, bounded by `ms`: `{ live, body }`, `{ other: what }` or `{ silent: true }`. */
function probeHealth(host, port, ms) {
  const address = host.address === '0.0.0.0' ? '127.0.0.1' : host.address === '::' ? '::1' : host.address;
  return new Promise((resolve) => {
    const socket = net.connect({ host: address, port });
    let data = Buffer.alloc(0);
    const done = (answer) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done({ silent: true }), ms);
    // Host: the address actually dialled, a loopback one for a wildcard, so a gateway's Host check (DOOR-7) passes.
    const authority = address.includes(':') ? `[${address}]` : address;
    socket.on('connect', () => socket.write(`GET /healthz HTTP/1.1\r\nHost: ${authority}:${port}\r\nConnection: close\r\n\r\n`));
    socket.on('data', (chunk) => {
      data = Buffer.concat([data, chunk]).subarray(0, 65536);
    });
    socket.on('error', (err) => done({ other: `failed: ${err.code || err.message}` }));
    socket.on('end', () => done(classify(data)));
  });
}

function classify(data) {
  const text = data.toString('utf8');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (!status) return { other: text === '' ? 'got no answer (the connection was closed)' : 'got an answer that is not HTTP' };
  if (status[1] !== '200') return { other: `answered ${status[1]}` };
  try {
    const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4));
    if (body && body.ok === true && body.status === 'live') return { live: true, body };
  } catch {
    // not JSON: not a gateway
  }
  return { other: 'answered 200 without a live gateway body' };
}

function uptime(ms) {
  return typeof ms === 'number' ? `${(ms / 1000).toFixed(1)}s` : 'unknown';
}

/** A name a holder reports (profile, version): escaped and cut (OPS-9); null or absent is `(none)`. */
function shownName(value) {
  if (value === null || value === undefined) return '(none)';
  return safeText(typeof value === 'string' ? value : JSON.stringify(value), NAME_CHARS);
}

function healthLine(answer) {
  if (answer.silent) return `  holder did not answer GET /healthz within ${PROBE_MS} ms (stopped or hung?)`;
  if (answer.other) return `  holder is not a gateway: GET /healthz ${answer.other}`;
  const b = answer.body;
  return `  holder is a live gateway: profile ${shownName(b.profile)}, version ${shownName(b.version)}, up ${uptime(b.uptimeMs)}`;
}

/**
 * Describes the holder of `host:port` after an EADDRINUSE refusal: `{ lines, live }`; `live` means it
 * answered as a live gateway (exit 5). Bounded by PROBE_MS even when the holder is SIGSTOPped.
 */
async function describeHolder(host, port) {
  const deadline = Date.now() + PROBE_MS;
  const health = probeHealth(host, port, PROBE_MS);
  const first = holderLine(host, port, deadline);
  const answer = await health;
  return { lines: [first, healthLine(answer)], live: Boolean(answer.live) };
}

/** The first line: who listens (the /proc scan runs while the health probe waits for its answer). */
function holderLine(host, port, deadline) {
  if (process.platform !== 'linux') return '  holder: unknown (only Linux shows who listens)';
  const listener = findListener(host, port);
  if (listener === null) return `  holder: no process listens on the address (no listening socket in /proc/net/tcp{,6} for port ${port})`;
  const found = findProcess(listener.inode, deadline);
  if (found.late) return `  holder: a listening socket of uid ${listener.uid}; its process was not found within ${PROBE_MS} ms`;
  if (found.pid === null) return `  holder: a listening socket of uid ${listener.uid}; its process is not visible from here`;
  return processLine(found.pid);
}

/** The ephemeral port range `{ lo, hi }`, or null if it cannot be read. */
function ephemeralRange() {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'latin1').trim().split(/\s+/).map(Number);
    return Number.isInteger(lo) && Number.isInteger(hi) ? { lo, hi } : null;
  } catch {
    return null;
  }
}

/** The warning for a port asked for inside the ephemeral range (never for port 0), or null. */
function ephemeralWarning(port) {
  const range = ephemeralRange();
  if (port === 0 || range === null || port < range.lo || port > range.hi) return null;
  return `warning: port ${port} lies inside the ephemeral port range ${range.lo}-${range.hi} (any outgoing connection may take it; choose a port below ${range.lo})`;
}

module.exports = { describeHolder, ephemeralWarning, findListener, procHex, joinArguments, shownName };
