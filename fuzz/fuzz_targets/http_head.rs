//! Fuzzes the HTTP request path on the gateway port: `http::parse_head` on arbitrary bytes, then
//! `http::route` and the response builders (SRV-3: bad HTTP gets a status, never a panic; PROTO-15: only a valid key is upgraded).
#![no_main]

use gateway_lock::http::{self, parse_head, route, Parsed, Route, Status, MAX_HEAD_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_head(data) {
        Ok(Parsed::Complete { head, len }) => {
            assert!(len <= data.len() && len <= MAX_HEAD_BYTES, "head length {len} of {}", data.len());
            // The head alone parses to the same head: what follows it is not part of it.
            assert_eq!(parse_head(&data[..len]), Ok(Parsed::Complete { head: head.clone(), len }));
            // The server reads incrementally: a head split across reads must not be refused early.
            for cut in [len - 1, len / 2] {
                assert_eq!(parse_head(&data[..cut]), Ok(Parsed::Partial), "prefix of {cut} bytes of a complete head");
            }
            let reply = match route(&head) {
                Route::Upgrade { accept_key } => {
                    assert_eq!(accept_key.len(), 28, "Sec-WebSocket-Accept is base64 of a SHA-1");
                    assert!(head.wants_websocket && head.path == "/");
                    // PROTO-15: only the base64 of 16 bytes is upgraded.
                    assert!(head.websocket_key.as_deref().is_some_and(http::valid_websocket_key));
                    http::upgrade_response(&accept_key)
                }
                Route::Health { head_only } | Route::Ready { head_only } => {
                    http::response(Status::Ok, "application/json", b"{}", head_only)
                }
                Route::Error(status) => {
                    let (code, _) = status.code_and_reason();
                    assert!((400..600).contains(&code), "an error route answered {code}");
                    http::error_response(status)
                }
            };
            assert!(reply.starts_with(b"HTTP/1.1 ") && reply.windows(4).any(|w| w == b"\r\n\r\n"));
        }
        Ok(Parsed::Partial) => assert!(data.len() < MAX_HEAD_BYTES, "partial at {} bytes, over the limit", data.len()),
        Err(err) => {
            assert!(matches!(err.status(), Status::BadRequest | Status::HeaderFieldsTooLarge), "{err}");
            let _ = http::error_response(err.status());
        }
    }
});
