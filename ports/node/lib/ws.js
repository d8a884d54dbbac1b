'use strict';
// WebSocket framing (RFC 6455), server side: the upgrade's accept key, a frame reader that judges each
// frame by its header before reading its payload (PROTO-7's frame gate), and frame writers.
const crypto = require('node:crypto');
const { isUtf8 } = require('node:buffer');

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

/** Sec-WebSocket-Accept for a client's Sec-WebSocket-Key. */
function acceptKey(key) {
  return crypto.createHash('sha1').update(key + GUID).digest('base64');
}

/** A valid Sec-WebSocket-Key: base64 of 16 bytes. */
function validKey(key) {
  return typeof key === 'string' && /^[A-Za-z0-9+/]{22}==$/.test(key);
}

/** One unmasked server frame. */
function encodeFrame(opcode, payload) {
  const len = payload.length;
  let head;
  if (len < 126) head = Buffer.from([0x80 | opcode, len]);
  else if (len < 65536) {
    head = Buffer.alloc(4);
    head.writeUInt16BE(len, 2);
    head[1] = 126;
  } else {
    head = Buffer.alloc(10);
    head.writeBigUInt64BE(BigInt(len), 2);
    head[1] = 127;
  }
  head[0] = 0x80 | opcode;
  return Buffer.concat([head, payload]);
}

function closeFrame(code, reason) {
  const body = Buffer.alloc(2 + Buffer.byteLength(reason));
  body.writeUInt16BE(code, 0);
  body.write(reason, 2);
  return encodeFrame(OP.close, body);
}

const violation = (code, reason) => ({ kind: 'violation', code, reason });
const PROTOCOL_ERROR = violation(1002, 'protocol error');
const TOO_LARGE = violation(1009, 'frame too large');
const INVALID_UTF8 = violation(1007, 'invalid UTF-8');

/** A close code a client may send (RFC 6455 section 7.4): 1000-1003, 1007-1013, 3000-4999. */
function sendableCode(code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1013) || (code >= 3000 && code <= 4999);
}

/**
 * Reads client frames from pushed bytes. `next(limit)` returns the next event, or null until more bytes
 * come: `{kind:'message', data}` (a whole message), `{kind:'ping', data}`, `{kind:'pong'}`,
 * `{kind:'close', code}` (a code a client may send, or null when it sent none), or
 * `{kind:'violation', code, reason}` (1002, 1007 or 1009; final: the reader then stops).
 * `limit` bounds a frame and its message; a frame announcing more is refused from its header alone,
 * before any of its payload is read. The caller passes the limit in force for that frame, so the
 * order of frames decides it, not their timing.
 */
class FrameReader {
  constructor() {
    this.buffer = Buffer.alloc(0);
    this.fragments = [];
    this.fragmentBytes = 0;
    this.failed = false;
  }

  push(chunk) {
    if (!this.failed) this.buffer = this.buffer.length ? Buffer.concat([this.buffer, chunk]) : chunk;
  }

  next(limit) {
    for (;;) {
      const event = this.frame(limit);
      if (event === null || event.kind !== 'fragment') return event;
    }
  }

  /** One frame: an event, `{kind:'fragment'}` for a non-final data frame, or null. */
  frame(limit) {
    if (this.failed) return null;
    const head = this.header();
    if (head === null) return null;
    if (head.kind === 'violation') return this.fail(head);
    const control = head.opcode >= 8;
    if (!control && (head.length > limit || this.fragmentBytes + head.length > limit)) return this.fail(TOO_LARGE);
    const total = head.offset + 4 + head.length;
    if (this.buffer.length < total) return null;
    const mask = this.buffer.subarray(head.offset, head.offset + 4);
    const payload = Buffer.from(this.buffer.subarray(head.offset + 4, total));
    for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3];
    this.buffer = this.buffer.subarray(total);
    return control ? this.control(head.opcode, payload) : this.data(head, payload);
  }

  fail(event) {
    this.failed = true;
    this.buffer = Buffer.alloc(0);
    return event;
  }

  /** The frame header, or null if incomplete; lengths over 2^53 are reported as Infinity. */
  header() {
    const b = this.buffer;
    if (b.length < 2) return null;
    const fin = (b[0] & 0x80) !== 0;
    const opcode = b[0] & 0x0f;
    if ((b[0] & 0x70) !== 0 || !Object.values(OP).includes(opcode) || (b[1] & 0x80) === 0) return PROTOCOL_ERROR;
    let length = b[1] & 0x7f;
    let offset = 2;
    if (opcode >= 8 && (!fin || length > 125)) return PROTOCOL_ERROR;
    if (length === 126) {
      if (b.length < 4) return null;
      length = b.readUInt16BE(2);
      offset = 4;
    } else if (length === 127) {
      if (b.length < 10) return null;
      const big = b.readBigUInt64BE(2);
      length = big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big);
      offset = 10;
    }
    const continuing = this.fragments.length > 0;
    if ((opcode === OP.continuation && !continuing) || ((opcode === OP.text || opcode === OP.binary) && continuing)) {
      return PROTOCOL_ERROR;
    }
    return { kind: 'frame', fin, opcode, length, offset };
  }

  control(opcode, payload) {
    if (opcode === OP.ping) return { kind: 'ping', data: payload };
    if (opcode === OP.pong) return { kind: 'pong' };
    if (payload.length === 0) return { kind: 'close', code: null };
    if (payload.length === 1 || !sendableCode(payload.readUInt16BE(0)) || !isUtf8(payload.subarray(2))) {
      return this.fail(PROTOCOL_ERROR);
    }
    return { kind: 'close', code: payload.readUInt16BE(0) };
  }

  data(head, payload) {
    if (this.fragments.length === 0) this.opcode = head.opcode;
    this.fragments.push(payload);
    this.fragmentBytes += payload.length;
    if (!head.fin) return { kind: 'fragment' };
    const data = Buffer.concat(this.fragments);
    this.fragments = [];
    this.fragmentBytes = 0;
    // A text message must be UTF-8 (PROTO-16); a binary one is read as text but not checked first.
    if (this.opcode === OP.text && !isUtf8(data)) return this.fail(INVALID_UTF8);
    return { kind: 'message', data };
  }
}

module.exports = { OP, acceptKey, validKey, encodeFrame, closeFrame, FrameReader };
