//! PROTO-15, PROTO-16: WebSocket strictness (RFC 6455) checked with raw socket bytes against a real
//! gateway: an invalid `Sec-WebSocket-Key` gets 400; a text frame that is not UTF-8 closes with 1007;
//! protocol violations (an unmasked client frame, RSV bits, an unknown opcode) close with 1002 and
//! a close frame, not a dropped connection; before and after authentication.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use crate::support::*;
use proptest::strategy::Strategy;

/// A raw upgrade request with this `Sec-WebSocket-Key`.
fn upgrade_request(key: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
}

/// A client frame: `first` is the first header byte (FIN, RSV, opcode); masked with `mask` if any.
fn frame(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let masked = if mask.is_some() { 0x80 } else { 0 };
    let mut out = match payload.len() {
        n @ 0..=125 => vec![first, n as u8 | masked],
        n => {
            let mut head = vec![first, 126 | masked];
            head.extend_from_slice(&(u16::try_from(n).unwrap()).to_be_bytes());
            head
        }
    };
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

const MASK: Option<[u8; 4]> = Some([1, 2, 3, 4]);

/// Reads one server frame (unmasked): (first header byte, payload).
fn read_frame(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).ok()?;
    let len = match head[1] & 0x7f {
        126 => {
            let mut ext = [0u8; 2];
            stream.read_exact(&mut ext).ok()?;
            u16::from_be_bytes(ext) as usize
        }
        127 => {
            let mut ext = [0u8; 8];
            stream.read_exact(&mut ext).ok()?;
            u64::from_be_bytes(ext) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).ok()?;
    Some((head[0], payload))
}

/// Opens a raw WebSocket (101 read, the challenge read); with `token`, completes `connect` too.
fn open(addr: SocketAddr, token: Option<&str>) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(upgrade_request("dGhlIHNhbXBsZSBub25jZQ==").as_bytes()).unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "{}", String::from_utf8_lossy(&head));
    let (_, challenge) = read_frame(&mut stream).expect("challenge");
    assert!(String::from_utf8_lossy(&challenge).contains("connect.challenge"));
    if let Some(token) = token {
        stream.write_all(&frame(0x81, connect_frame(4, 4, Some(token)).as_bytes(), MASK)).unwrap();
        let (_, hello) = read_frame(&mut stream).expect("hello");
        assert!(String::from_utf8_lossy(&hello).contains("hello-ok"));
    }
    stream
}

/// The close code the gateway sends next (data frames before it skipped); `None`: the connection
/// ended without a close frame.
fn close_code(stream: &mut TcpStream) -> Option<u16> {
    loop {
        let (first, payload) = read_frame(stream)?;
        if first & 0x0f == 0x8 {
            return Some(u16::from_be_bytes([payload[0], payload[1]]));
        }
    }
}

/// PROTO-15: a key that is not the base64 of 16 bytes gets 400; a good one is upgraded.
#[test]
fn proto15_invalid_websocket_key_gets_400() {
    let gw = start_gateway_with_token(&[]);
    for key in
        ["", "short", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ=!", "dGhlIHNhbXBsZSBub25jZXh4eA==", "!!!!!!!!!!!!!!!!!!!!!!=="]
    {
        let answer = http_raw(gw.addr, upgrade_request(key).as_bytes());
        assert!(answer.starts_with("HTTP/1.1 400 "), "key {key:?}: {answer}");
    }
    let answer = {
        let mut s = TcpStream::connect_timeout(&gw.addr, DEADLINE).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s.write_all(upgrade_request("AAAAAAAAAAAAAAAAAAAAAA==").as_bytes()).unwrap();
        let mut buf = [0u8; 12];
        s.read_exact(&mut buf).unwrap();
        buf
    };
    assert_eq!(&answer, b"HTTP/1.1 101");
}

/// PROTO-16: a text frame that is not UTF-8 closes with 1007, before and after authentication.
#[test]
fn proto16_text_that_is_not_utf8_closes_1007() {
    let gw = start_gateway_with_token(&[]);
    for token in [None, Some(TEST_TOKEN)] {
        let mut stream = open(gw.addr, token);
        stream.write_all(&frame(0x81, b"{\"x\":\"\xff\xfe\"}", MASK)).unwrap();
        assert_eq!(close_code(&mut stream), Some(1007), "authenticated: {}", token.is_some());
    }
}

/// PROTO-16: protocol violations close with 1002 and a close frame, before and after
/// authentication: an unmasked client frame, RSV bits without an extension, an unknown opcode,
/// a fragmented or oversize control frame, a continuation without a message, a data frame
/// inside a fragmented message, a close frame with a 1-byte payload or a code a client may not
/// send ("WebSocket framing" in `spec/protocol.md`).
#[test]
fn proto16_protocol_violations_close_1002() {
    let gw = start_gateway_with_token(&[]);
    let violations: [(&str, Vec<u8>); 11] = [
        ("continuation without a message", frame(0x80, b"{}", MASK)),
        ("close with a 1-byte payload", frame(0x88, b"\x03", MASK)),
        ("close with code 1005 (never sent)", frame(0x88, &1005u16.to_be_bytes(), MASK)),
        ("close with code 999", frame(0x88, &999u16.to_be_bytes(), MASK)),
        ("data frame inside a fragmented message", [frame(0x01, b"{", MASK), frame(0x81, b"}", MASK)].concat()),
        ("oversize ping", frame(0x89, &[b'p'; 126], MASK)),
        ("unmasked", frame(0x81, b"{}", None)),
        ("RSV1", frame(0xC1, b"{}", MASK)),
        ("RSV3", frame(0x91, b"{}", MASK)),
        ("opcode 3", frame(0x83, b"{}", MASK)),
        ("fragmented ping", frame(0x09, b"x", MASK)),
    ];
    for token in [None, Some(TEST_TOKEN)] {
        for (what, bytes) in &violations {
            let mut stream = open(gw.addr, token);
            stream.write_all(bytes).unwrap();
            assert_eq!(close_code(&mut stream), Some(1002), "{what}, authenticated: {}", token.is_some());
        }
    }
}

/// A violation of RFC 6455 a client can commit, and the close code it must get.
#[derive(Debug, Clone)]
enum Violation {
    /// A text frame whose payload is not UTF-8 (these bytes, then 0xff).
    BadUtf8(Vec<u8>),
    /// RSV bits (1–7) set on a text frame without a negotiated extension.
    Rsv(u8),
    /// A reserved opcode.
    Opcode(u8),
    /// An unmasked text or binary frame.
    Unmasked(bool),
}

impl Violation {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Violation::BadUtf8(prefix) => frame(0x81, &[prefix.as_slice(), b"\xff"].concat(), MASK),
            Violation::Rsv(rsv) => frame(0x81 | (rsv << 4), b"{}", MASK),
            Violation::Opcode(op) => frame(0x80 | op, b"{}", MASK),
            Violation::Unmasked(text) => frame(if *text { 0x81 } else { 0x82 }, b"{}", None),
        }
    }
    fn code(&self) -> u16 {
        match self {
            Violation::BadUtf8(_) => 1007,
            _ => 1002,
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 24, ..proptest::test_runner::Config::default() })]

    /// PROTO-16: any such violation, before or after authentication, gets a close frame with its
    /// code (never a dropped connection) from a real gateway.
    #[test]
    fn proto16_any_violation_gets_its_close_frame(
        violation in proptest::prop_oneof![
            proptest::collection::vec(0u8..0x80, 0..40).prop_map(Violation::BadUtf8),
            (1u8..8).prop_map(Violation::Rsv),
            proptest::sample::select(vec![3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf]).prop_map(Violation::Opcode),
            proptest::bool::ANY.prop_map(Violation::Unmasked),
        ],
        authenticated in proptest::bool::ANY,
    ) {
        let gw = start_gateway_with_token(&[]);
        let mut stream = open(gw.addr, authenticated.then_some(TEST_TOKEN));
        stream.write_all(&violation.bytes()).unwrap();
        proptest::prop_assert_eq!(close_code(&mut stream), Some(violation.code()), "{:?}", violation);
    }
}
