//! The health client: `GET /healthz` to whatever holds a port, bounded by a deadline, and the
//! interpretation of its reply (free of I/O).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The most bytes of a health reply that are read.
const MAX_REPLY_BYTES: u64 = 64 * 1024;

/// What a gateway reports about itself in its health body.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthInfo {
    /// The pid it reports.
    pub pid: Option<u32>,
    /// Its profile (`None`: no profile), escaped and cut for display (OPS-9: another process chose it).
    pub profile: Option<String>,
    /// Its version, escaped and cut for display (OPS-9).
    pub version: Option<String>,
    /// Milliseconds since it took the lock.
    pub uptime_ms: Option<u64>,
}

/// How the holder answered `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Nothing listens: the connection was refused.
    Refused,
    /// A gateway's health body: `"ok":true,"status":"live"`.
    Gateway(HealthInfo),
    /// Something answered, but not as a live gateway; the text says what it did.
    Other(String),
    /// Connected, but no complete answer before the deadline (stopped, hung, or not reading).
    NoAnswer,
}

impl Answer {
    /// The health info, if a gateway answered.
    pub fn health(&self) -> Option<&HealthInfo> {
        match self {
            Answer::Gateway(info) => Some(info),
            _ => None,
        }
    }
}

/// Interprets the bytes a holder sent in reply to `GET /healthz` (read until it closed).
pub(crate) fn parse_health_reply(reply: &[u8]) -> Answer {
    if reply.is_empty() {
        return Answer::Other("closed the connection without answering".into());
    }
    let text = String::from_utf8_lossy(reply);
    let status_line = text.lines().next().unwrap_or("").trim().to_string();
    let (head, body) = match text.split_once("\r\n\r\n") {
        Some(parts) => parts,
        None => return Answer::Other(format!("answered {:?}", truncate(&status_line))),
    };
    if !head.starts_with("HTTP/1.") || status_line.split_whitespace().nth(1) != Some("200") {
        return Answer::Other(format!("answered {:?}", truncate(&status_line)));
    }
    let json: serde_json::Value = match serde_json::from_str(body.trim()) {
        Ok(json) => json,
        Err(_) => return Answer::Other("answered 200 without a JSON health body".into()),
    };
    if json.get("ok") != Some(&serde_json::Value::Bool(true)) || json.get("status").and_then(|s| s.as_str()) != Some("live") {
        return Answer::Other("answered a health body that is not \"ok\":true,\"status\":\"live\"".into());
    }
    Answer::Gateway(HealthInfo {
        pid: json.get("pid").and_then(|v| v.as_u64()).and_then(|v| u32::try_from(v).ok()),
        // Names reported by another process are shown escaped and cut (OPS-9).
        profile: json.get("profile").and_then(|v| v.as_str()).map(crate::safe_text::name),
        version: json.get("version").and_then(|v| v.as_str()).map(crate::safe_text::name),
        uptime_ms: json.get("uptimeMs").and_then(|v| v.as_u64()),
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The address to connect to for `addr`: the wildcard means this host's loopback.
pub(crate) fn connect_target(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port()),
        _ => addr,
    }
}

/// Asks the holder of `addr` for `GET /healthz`, giving up at `deadline`.
pub(crate) fn ask_health(addr: SocketAddr, deadline: Instant) -> Answer {
    let target = connect_target(addr);
    let remaining = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    let mut stream = match TcpStream::connect_timeout(&target, remaining()) {
        Ok(stream) => stream,
        Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => return Answer::Refused,
        Err(err) if matches!(err.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => return Answer::NoAnswer,
        Err(err) => return Answer::Other(format!("could not be connected to: {err}")),
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n");
    let _ = stream.set_write_timeout(Some(remaining()));
    if stream.write_all(request.as_bytes()).is_err() {
        return if Instant::now() >= deadline { Answer::NoAnswer } else { Answer::Other("closed the connection without answering".into()) };
    }
    let mut reply = Vec::new();
    let mut limited = (&stream).take(MAX_REPLY_BYTES);
    let mut chunk = [0u8; 4096];
    loop {
        if Instant::now() >= deadline {
            return Answer::NoAnswer;
        }
        let _ = stream.set_read_timeout(Some(remaining()));
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            Err(_) if reply.is_empty() => return Answer::Other("reset the connection without answering".into()),
            Err(_) => break,
        }
    }
    parse_health_reply(&reply)
}
