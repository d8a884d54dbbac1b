//! HTTP/1.1 on the gateway port, free of I/O: parsing a request head and routing it.
//!
//! The gateway reads at most [`MAX_HEAD_BYTES`] of a request head, parses it with `httparse`,
//! and answers one request per connection (`Connection: close`): a health probe, a WebSocket
//! upgrade on `/`, or an error status. Anything malformed gets a 4xx, never a panic.

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The largest request head the gateway reads; a larger one gets 431.
pub(crate) const MAX_HEAD_BYTES: usize = 8 * 1024;
/// The most header fields a request may carry; more gets 431.
pub(crate) const MAX_HEADERS: usize = 32;

/// A parsed request head: only what routing needs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RequestHead {
    /// The request method, e.g. `GET`.
    pub method: String,
    /// The request target's path, without the query string.
    pub path: String,
    /// `Upgrade: websocket` was asked for (with `Connection: upgrade`).
    pub wants_websocket: bool,
    /// The `Sec-WebSocket-Key` header, if any.
    pub websocket_key: Option<String>,
    /// The `Sec-WebSocket-Version` header, if any.
    pub websocket_version: Option<String>,
    /// The `Origin` header, if any.
    pub origin: Option<String>,
    /// Every `Host` header value, in order (DOOR-7).
    pub hosts: Vec<String>,
    /// The request is HTTP/1.1 (not 1.0), so `Host` is required.
    pub http11: bool,
}

/// The outcome of feeding bytes to [`parse_head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// The head is complete; it used the first `len` bytes (the rest belongs to the body or
    /// the WebSocket stream).
    Complete {
        /// The parsed head.
        head: RequestHead,
        /// Bytes of the buffer the head used.
        len: usize,
    },
    /// More bytes are needed.
    Partial,
}

/// Why a request head was refused; each maps to a status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    /// Malformed request line or header.
    #[error("malformed request: {0}")]
    Malformed(String),
    /// Head larger than [`MAX_HEAD_BYTES`] or with more than [`MAX_HEADERS`] fields.
    #[error("request head too large")]
    TooLarge,
}

impl HeadError {
    /// The response status for this error.
    pub(crate) fn status(&self) -> Status {
        match self {
            HeadError::Malformed(_) => Status::BadRequest,
            HeadError::TooLarge => Status::HeaderFieldsTooLarge,
        }
    }
}

/// Parses the request head at the start of `buf`.
pub(crate) fn parse_head(buf: &[u8]) -> Result<Parsed, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => return Err(HeadError::TooLarge),
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(err) => return Err(HeadError::Malformed(err.to_string())),
    };
    if len > MAX_HEAD_BYTES {
        return Err(HeadError::TooLarge);
    }
    let target = req.path.unwrap_or("/");
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    let mut head =
        RequestHead { method: req.method.unwrap_or("").to_string(), path, http11: req.version == Some(1), ..RequestHead::default() };
    let (mut upgrade, mut connection_upgrade) = (false, false);
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| HeadError::Malformed(format!("header {} is not UTF-8", h.name)))?;
        let value = trim_ows(value);
        let has_token = |token: &str| value.split(',').any(|t| trim_ows(t).eq_ignore_ascii_case(token));
        match h.name.to_ascii_lowercase().as_str() {
            "upgrade" => upgrade |= has_token("websocket"),
            "connection" => connection_upgrade |= has_token("upgrade"),
            "sec-websocket-key" => head.websocket_key = Some(value.to_string()),
            "sec-websocket-version" => head.websocket_version = Some(value.to_string()),
            "origin" => head.origin = Some(value.to_string()),
            "host" => head.hosts.push(value.to_string()),
            _ => {}
        }
    }
    head.wants_websocket = upgrade && connection_upgrade;
    Ok(Parsed::Complete { head, len })
}

/// `text` without surrounding optional whitespace: spaces and tabs only (RFC 9110 §5.6.3), not
/// other Unicode white space.
pub(crate) fn trim_ows(text: &str) -> &str {
    text.trim_matches([' ', '\t'])
}

/// The response statuses the gateway sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    /// 101
    #[allow(dead_code)] // the upgrade writes its 101 itself (`upgrade_response`)
    SwitchingProtocols,
    /// 200
    Ok,
    /// 400
    BadRequest,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 408
    RequestTimeout,
    /// 421: the `Host` names no host this gateway serves (DOOR-7).
    MisdirectedRequest,
    /// 426
    UpgradeRequired,
    /// 431
    HeaderFieldsTooLarge,
    /// 503
    ServiceUnavailable,
}

impl Status {
    /// The numeric code and reason phrase.
    pub(crate) fn code_and_reason(self) -> (u16, &'static str) {
        match self {
            Status::SwitchingProtocols => (101, "Switching Protocols"),
            Status::Ok => (200, "OK"),
            Status::BadRequest => (400, "Bad Request"),
            Status::Forbidden => (403, "Forbidden"),
            Status::NotFound => (404, "Not Found"),
            Status::MethodNotAllowed => (405, "Method Not Allowed"),
            Status::RequestTimeout => (408, "Request Timeout"),
            Status::MisdirectedRequest => (421, "Misdirected Request"),
            Status::UpgradeRequired => (426, "Upgrade Required"),
            Status::HeaderFieldsTooLarge => (431, "Request Header Fields Too Large"),
            Status::ServiceUnavailable => (503, "Service Unavailable"),
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET`/`HEAD` `/healthz` or `/health`: the liveness body (`head_only` for `HEAD`).
    Health {
        /// Send headers only.
        head_only: bool,
    },
    /// `GET`/`HEAD` `/ready`, `/readyz`, `/startup` or `/startupz`: 200 while serving, 503 while
    /// shutting down ([`readiness`]).
    Ready {
        /// Send headers only.
        head_only: bool,
    },
    /// A valid WebSocket upgrade on `/`: answer 101 with this `Sec-WebSocket-Accept`.
    Upgrade {
        /// The accept key for the 101 response.
        accept_key: String,
    },
    /// Answer with this status and a short plain-text body.
    Error(Status),
}

/// Routes a parsed request head.
pub(crate) fn route(head: &RequestHead) -> Route {
    let method = head.method.as_str();
    match head.path.as_str() {
        "/healthz" | "/health" => match method {
            "GET" => Route::Health { head_only: false },
            "HEAD" => Route::Health { head_only: true },
            _ => Route::Error(Status::MethodNotAllowed),
        },
        "/ready" | "/readyz" | "/startup" | "/startupz" => match method {
            "GET" => Route::Ready { head_only: false },
            "HEAD" => Route::Ready { head_only: true },
            _ => Route::Error(Status::MethodNotAllowed),
        },
        "/" if method != "GET" => Route::Error(Status::MethodNotAllowed),
        "/" if !head.wants_websocket => Route::Error(Status::UpgradeRequired),
        "/" => match (&head.websocket_key, head.websocket_version.as_deref()) {
            (Some(key), Some("13")) if valid_websocket_key(key) => Route::Upgrade { accept_key: derive_accept_key(key.as_bytes()) },
            _ => Route::Error(Status::BadRequest),
        },
        _ => Route::Error(Status::NotFound),
    }
}

/// Whether `key` is a `Sec-WebSocket-Key` as RFC 6455 §4.1 requires: the base64 of 16 bytes,
/// which is 22 characters of the base64 alphabet and `==` (PROTO-15).
pub(crate) fn valid_websocket_key(key: &str) -> bool {
    let Some(chars) = key.strip_suffix("==") else { return false };
    chars.len() == 22 && chars.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The status and JSON body of a readiness probe: 200 `{"ok":true,"status":"ready"}` while
/// `serving`, else 503 `{"ok":false,"status":"shutting down"}` (`spec/protocol.md`, PROTO-13).
pub(crate) fn readiness(serving: bool) -> (Status, &'static str) {
    if serving {
        (Status::Ok, r#"{"ok":true,"status":"ready"}"#)
    } else {
        (Status::ServiceUnavailable, r#"{"ok":false,"status":"shutting down"}"#)
    }
}

/// Serialises a complete response with `Connection: close`.
pub(crate) fn response(status: Status, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let (code, reason) = status.code_and_reason();
    let mut out = format!("HTTP/1.1 {code} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n", body.len());
    if status == Status::MethodNotAllowed {
        out.push_str("Allow: GET, HEAD\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// A plain-text error response: the status line's reason as body.
pub(crate) fn error_response(status: Status) -> Vec<u8> {
    let (code, reason) = status.code_and_reason();
    response(status, "text/plain; charset=utf-8", format!("{code} {reason}\n").as_bytes(), false)
}

/// The `101 Switching Protocols` response for a WebSocket upgrade.
pub(crate) fn upgrade_response(accept_key: &str) -> Vec<u8> {
    format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept_key}\r\n\r\n")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RequestHead {
        match parse_head(s.as_bytes()).unwrap() {
            Parsed::Complete { head, .. } => head,
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route(&parse("GET /healthz HTTP/1.1\r\n\r\n")), Route::Health { head_only: false });
        assert_eq!(route(&parse("HEAD /health?x=1 HTTP/1.1\r\n\r\n")), Route::Health { head_only: true });
        assert_eq!(route(&parse("POST /healthz HTTP/1.1\r\n\r\n")), Route::Error(Status::MethodNotAllowed));
        assert_eq!(route(&parse("GET /nope HTTP/1.1\r\n\r\n")), Route::Error(Status::NotFound));
        for path in ["/ready", "/readyz", "/startup", "/startupz?verbose=1"] {
            assert_eq!(route(&parse(&format!("GET {path} HTTP/1.1\r\n\r\n"))), Route::Ready { head_only: false });
            assert_eq!(route(&parse(&format!("HEAD {path} HTTP/1.1\r\n\r\n"))), Route::Ready { head_only: true });
            assert_eq!(route(&parse(&format!("PUT {path} HTTP/1.1\r\n\r\n"))), Route::Error(Status::MethodNotAllowed));
        }
        assert_eq!(route(&parse("GET / HTTP/1.1\r\n\r\n")), Route::Error(Status::UpgradeRequired));
        let up = "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(route(&parse(up)), Route::Upgrade { accept_key: "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into() });
    }

    /// PROTO-15: only the base64 of 16 bytes is a `Sec-WebSocket-Key`; anything else gets 400.
    #[test]
    fn proto15_websocket_key_must_be_16_bytes_of_base64() {
        assert!(valid_websocket_key("dGhlIHNhbXBsZSBub25jZQ=="));
        assert!(valid_websocket_key("AAAAAAAAAAAAAAAAAAAA+/=="));
        for bad in [
            "",
            "x",
            "dGhlIHNhbXBsZSBub25jZQ",
            "dGhlIHNhbXBsZSBub25jZQ=",
            "dGhlIHNhbXBsZSBub25jZXh4eA==",
            "dGhlIHNhbXBsZSBub25jZ!==",
            "dGhlIHNhbXBsZSBub25jZQ=a",
        ] {
            assert!(!valid_websocket_key(bad), "{bad:?}");
            let up = format!("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {bad}\r\nSec-WebSocket-Version: 13\r\n\r\n");
            assert_eq!(route(&parse(&up)), Route::Error(Status::BadRequest), "{bad:?}");
        }
    }

    /// Standard base64 with padding (for the test below).
    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
            }
        }
        out
    }

    proptest::proptest! {
        /// PROTO-15: the base64 of any 16 bytes is a key; of any other length it is not.
        #[test]
        fn proto15_keys_are_exactly_16_bytes_of_base64(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            proptest::prop_assert_eq!(valid_websocket_key(&base64(&bytes)), bytes.len() == 16, "{}", base64(&bytes));
        }
    }

    /// PROTO-13: readiness is 200 while serving, 503 while shutting down.
    #[test]
    fn proto13_readiness() {
        assert_eq!(readiness(true), (Status::Ok, r#"{"ok":true,"status":"ready"}"#));
        assert_eq!(readiness(false).0, Status::ServiceUnavailable);
    }

    #[test]
    fn bad_heads() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\n").unwrap(), Parsed::Partial);
        assert!(matches!(parse_head(b"\x00\x01garbage\r\n\r\n"), Err(HeadError::Malformed(_))));
        // 8 KiB of a method token and still no request line: a head over the limit (431, spec/cli.md).
        assert_eq!(parse_head(&vec![b'a'; MAX_HEAD_BYTES]).err().map(|e| e.status()), Some(Status::HeaderFieldsTooLarge));
        let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(parse_head(long.as_bytes()), Err(HeadError::TooLarge));
    }
}
