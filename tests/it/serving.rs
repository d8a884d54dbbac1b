//! What the gateway serves on the held port: health, WebSocket upgrades, and clear statuses
//! for bad requests (SRV-1..3).

use std::time::Duration;

use crate::support::*;
use tokio_tungstenite::tungstenite::Message;

/// SRV-1: `GET /healthz` (and `/health`) answers 200 with the documented JSON; HEAD has no body.
#[test]
fn srv1_healthz_reports_the_holder() {
    let gw = start_gateway(&["--port", "0"]);
    for path in ["/healthz", "/health"] {
        let response = http_get(gw.addr, path);
        let (head, body) = response.split_once("\r\n\r\n").expect("a complete response");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains("Content-Type: application/json"), "{head}");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        assert_eq!(json["ok"], true);
        assert_eq!(json["status"], "live");
        assert_eq!(json["pid"], gw.proc.pid());
        assert_eq!(json["port"], gw.port());
        assert_eq!(json["host"], "127.0.0.1");
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
        assert!(json["uptimeMs"].is_u64());
    }
    let head = http_raw(gw.addr, b"HEAD /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"), "{head:?}");
}

/// SRV-2: a WebSocket upgrade on `/` is accepted and the connection works (ping → pong).
#[test]
fn srv2_websocket_upgrade_is_accepted() {
    let gw = start_gateway(&["--port", "0"]);
    let mut ws = ws_connect(gw.addr);
    ws.send(Message::Ping(b"x".to_vec().into())).unwrap();
    loop {
        match ws.read().unwrap() {
            Message::Pong(p) => break assert_eq!(&p[..], b"x"),
            _ => continue,
        }
    }
}

/// SRV-3: bad requests get statuses, never a panic or a hang, and the gateway keeps serving.
#[test]
fn srv3_bad_requests_get_statuses_and_the_gateway_keeps_serving() {
    let gw = start_gateway(&["--port", "0"]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"\x16\x03\x01\x00garbage\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
        (format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(9000)).into_bytes(), "HTTP/1.1 431 "),
        ((0..40).map(|i| format!("H{i}: v\r\n")).fold("GET / HTTP/1.1\r\n".to_string(), |a, h| a + &h).into_bytes(), "HTTP/1.1 431 "),
        (b"GET /nope HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), "HTTP/1.1 404 "),
        (b"POST /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), "HTTP/1.1 405 "),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(), "HTTP/1.1 426 "),
        (b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n".to_vec(), "HTTP/1.1 400 "),
    ];
    for (request, want) in cases {
        let response = http_raw(gw.addr, &request);
        assert!(response.starts_with(want), "{:?} → {response:?}", String::from_utf8_lossy(&request[..request.len().min(40)]));
    }
    assert!(http_get(gw.addr, "/healthz").starts_with("HTTP/1.1 200 OK"));
}

/// SRV-3: a client that never completes its request head gets 408 at the head timeout
/// (in-process server with a short timeout, real sockets).
#[test]
fn srv3_incomplete_head_gets_408_at_the_timeout() {
    use gateway_lock::{serve, GatewayInfo, ServerConfig};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let listener = gateway_lock::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = ServerConfig { head_timeout: Duration::from_millis(200), ..ServerConfig::default() };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(listener, GatewayInfo::new(addr), config, async {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let response = http_raw(addr, b"GET /healthz HTTP/1.1\r\n");
    assert!(response.starts_with("HTTP/1.1 408 "), "{response:?}");
    stop_tx.send(()).unwrap();
    let stopped = server.join().unwrap();
    assert_eq!(stopped.abandoned, 0);
}
