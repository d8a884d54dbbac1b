'use strict';
// A raw WebSocket client for the port's tests: it sends exactly the bytes a test gives (masked or not,
// any RSV bits or opcodes), and reads the gateway's frames one by one, each with a deadline.
const net = require('node:net');
const { within } = require('./harness');

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

/** One client frame: masked unless `mask: false`; `rsv` sets bits 4-6 of the first byte. */
function frame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.from(payload);
  const len = data.length;
  const head = len < 126 ? Buffer.from([0, len]) : Buffer.from([0, 126, len >> 8, len & 255]);
  head[0] = (fin ? 0x80 : 0) | (rsv << 4) | opcode;
  if (!mask) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const key = [1, 2, 3, 4];
  return Buffer.concat([head, Buffer.from(key), Buffer.from(data.map((b, i) => b ^ key[i & 3]))]);
}

const text = (value) => frame(1, typeof value === 'string' ? value : JSON.stringify(value));

/** Connects and upgrades; resolves to `{ socket, next(), send(bytes), ended }` once the 101 arrived. */
async function connect(port, { host = `127.0.0.1:${port}` } = {}) {
  const socket = net.connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  let buffer = Buffer.alloc(0);
  let wake = () => {};
  let ended = false;
  socket.on('data', (chunk) => {
    buffer = Buffer.concat([buffer, chunk]);
    wake();
  });
  const ending = new Promise((resolve) => socket.on('close', () => {
    ended = true;
    wake();
    resolve();
  }));
  const more = () => new Promise((resolve) => {
    wake = resolve;
  });
  socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${KEY}\r\n\r\n`);
  await within((async () => {
    while (buffer.indexOf('\r\n\r\n') < 0) {
      if (ended) throw new Error('closed before the 101');
      await more();
    }
  })(), 'the 101');
  const status = buffer.subarray(0, buffer.indexOf('\r\n')).toString();
  if (!status.startsWith('HTTP/1.1 101')) throw new Error(status);
  buffer = buffer.subarray(buffer.indexOf('\r\n\r\n') + 4);
  /** The next server frame `{ opcode, payload, code?, json? }`, or null once the connection ended. */
  const next = () => within((async () => {
    for (;;) {
      if (buffer.length >= 2) {
        let len = buffer[1] & 0x7f;
        let off = 2;
        if (len === 126) [len, off] = [buffer.length >= 4 ? buffer.readUInt16BE(2) : Infinity, 4];
        else if (len === 127) [len, off] = [buffer.length >= 10 ? Number(buffer.readBigUInt64BE(2)) : Infinity, 10];
        if (buffer.length >= off + len) {
          const opcode = buffer[0] & 0x0f;
          const payload = buffer.subarray(off, off + len);
          buffer = buffer.subarray(off + len);
          const f = { opcode, payload };
          if (opcode === 8 && payload.length >= 2) f.code = payload.readUInt16BE(0);
          if (opcode === 1) f.json = JSON.parse(payload.toString());
          return f;
        }
      }
      if (ended) return null;
      await more();
    }
  })(), 'a frame');
  return { socket, next, send: (bytes) => socket.write(bytes), ended: () => ending };
}

const CONNECT = (token, over = {}) => ({
  type: 'req', id: 'c', method: 'connect',
  params: { minProtocol: 4, maxProtocol: 4, client: { id: 'test', version: '1', platform: 'node', mode: 'test' }, auth: { token }, ...over },
});

module.exports = { connect, frame, text, CONNECT, KEY };
