'use strict';
// Showing text another process chose (OPS-9): every control character (C0, DEL, C1), bidirectional or
// zero-width formatting character and backslash escaped (`\n`, `\r`, `\t`, `\\`, `\xHH` below U+0080,
// `\u{H...}` above), a byte that is not UTF-8 as `\xHH`, and the result cut after a limit with a marker.

const SHORT = { '\n': '\\n', '\r': '\\r', '\t': '\\t', '\\': '\\\\' };
const UNSAFE = /[\x00-\x1f\x7f-\x9f\\\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/u;

function escapeChar(c) {
  if (SHORT[c]) return SHORT[c];
  const code = c.codePointAt(0);
  return code < 0x80 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** The escaped pieces of `bytes` (a Buffer), one per character: invalid UTF-8 bytes become `\xHH`. */
function pieces(bytes) {
  const out = [];
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let i = 0;
  while (i < bytes.length) {
    const len = sequenceLength(bytes, i);
    if (len === 0) {
      out.push(`\\x${bytes[i].toString(16).padStart(2, '0')}`);
      i += 1;
      continue;
    }
    const c = decoder.decode(bytes.subarray(i, i + len));
    out.push(UNSAFE.test(c) ? escapeChar(c) : c);
    i += len;
  }
  return out;
}

/** Length of the well-formed UTF-8 sequence at `i`, or 0 if the byte there does not start one. */
function sequenceLength(b, i) {
  const x = b[i];
  if (x < 0x80) return 1;
  const cont = (k) => i + k < b.length && (b[i + k] & 0xc0) === 0x80;
  if (x >= 0xc2 && x <= 0xdf) return cont(1) ? 2 : 0;
  if (x >= 0xe0 && x <= 0xef) {
    const lo = x === 0xe0 ? 0xa0 : 0x80;
    const hi = x === 0xed ? 0x9f : 0xbf;
    return i + 1 < b.length && b[i + 1] >= lo && b[i + 1] <= hi && cont(2) ? 3 : 0;
  }
  if (x >= 0xf0 && x <= 0xf4) {
    const lo = x === 0xf0 ? 0x90 : 0x80;
    const hi = x === 0xf4 ? 0x8f : 0xbf;
    return i + 1 < b.length && b[i + 1] >= lo && b[i + 1] <= hi && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/**
 * `text` (a string or a Buffer of bytes) made safe to print: escaped, then cut after `limit` characters
 * (counted after escaping) with ` [... N more characters]`.
 */
function safeText(text, limit = Infinity) {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(String(text), 'utf8');
  const chars = [...pieces(bytes).join('')];
  if (chars.length <= limit) return chars.join('');
  return `${chars.slice(0, limit).join('')} [... ${chars.length - limit} more characters]`;
}

module.exports = { safeText };
