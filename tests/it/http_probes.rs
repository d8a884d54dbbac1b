//! Readiness and startup probes on the held port (spec/protocol.md, PROTO-13, PROTO-14).

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::*;
use nix::sys::signal::Signal;

/// PROTO-13: `/ready`, `/readyz`, `/startup`, `/startupz` answer 200 while serving (HEAD: no body);
/// other methods 405.
#[test]
fn proto13_readiness_probes_answer_200_while_serving() {
    let gw = start_gateway_with_token(&[]);
    for path in ["/ready", "/readyz", "/startup", "/startupz"] {
        let response = http_get(gw.addr, path);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {response}");
        assert!(response.ends_with("\r\n\r\n{\"ok\":true,\"status\":\"ready\"}"), "{path}: {response}");
        let head = http_raw(gw.addr, format!("HEAD {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes());
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.ends_with("\r\n\r\n"), "{head}");
        let post = http_raw(gw.addr, format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n").as_bytes());
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
    }
}

/// PROTO-14: the health body holds `"ok":true,"status":"live"` (what the peer's supervisors probe for).
#[test]
fn proto14_health_body_is_live() {
    let gw = start_gateway_with_token(&[]);
    for path in ["/health", "/healthz"] {
        let response = http_get(gw.addr, path);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\"ok\":true,") && response.contains("\"status\":\"live\""), "{response}");
    }
}

/// PROTO-13: a readiness probe whose request completes while the gateway shuts down gets 503
/// (and so does a WebSocket upgrade).
/// Its connection was accepted (and its first bytes read) before the signal; the `shutdown`
/// event on an authenticated client shows that shutdown has begun.
#[test]
fn proto13_readiness_is_503_while_shutting_down() {
    let gw = start_gateway_with_token(&[]);
    let (mut ws, _) = ws_handshake(gw.addr, TEST_TOKEN);
    let mut probe = TcpStream::connect_timeout(&gw.addr, DEADLINE).unwrap();
    probe.set_read_timeout(Some(DEADLINE)).unwrap();
    probe.write_all(b"GET /readyz HTTP/1.1\r\n").unwrap();
    let mut upgrade = TcpStream::connect_timeout(&gw.addr, DEADLINE).unwrap();
    upgrade.set_read_timeout(Some(DEADLINE)).unwrap();
    upgrade.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    // A later request answered means the probe's connection was accepted and its bytes read
    // (one thread, connections served in order).
    assert!(http_get(gw.addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
    gw.signal(Signal::SIGTERM);
    assert_eq!(ws_json(&mut ws)["event"], "shutdown");
    probe.write_all(b"Host: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    probe.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{response}");
    assert!(response.ends_with("{\"ok\":false,\"status\":\"shutting down\"}"), "{response}");
    // A WebSocket upgrade completed during shutdown gets 503 too: no session starts.
    upgrade
        .write_all(b"Host: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    upgrade.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{response}");
    assert!(gw.wait().success());
}
