//! The spec's expectations, written down once from `spec/` (never taken from the implementation
//! under test): the ready line, the exact messages, exit codes, close codes, limits, and the
//! thresholds the conformance runner applies (stated in `spec/README.md`, "Checking a port").

use std::net::IpAddr;
use std::time::Duration;

/// `ws://<host>:<port>` with an IPv6 host bracketed (`spec/errors.md`).
pub fn url(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("ws://[{ip}]:{port}"),
        _ => format!("ws://{host}:{port}"),
    }
}

/// The prefix of the ready line (`spec/cli.md`, step 4).
pub const READY_PREFIX: &str = "listening on ";

/// The ready line for `host:port`, without its newline.
pub fn ready_line(host: &str, port: u16) -> String {
    format!("{READY_PREFIX}{}", url(host, port))
}

/// The address a ready line names (`listening on ws://127.0.0.1:P` -> `127.0.0.1:P`, with or
/// without its newline); `None` if `line` is not a ready line.
pub fn ready_addr(line: &str) -> Option<std::net::SocketAddr> {
    line.trim_end_matches('\n').strip_prefix(READY_PREFIX)?.strip_prefix("ws://")?.parse().ok()
}

/// `gateway stop`'s line when nothing listens (OPS-3, `spec/cli.md`), exact.
pub fn nothing_listening(url: &str) -> String {
    format!("no gateway is listening on {url}: the port is free")
}

/// ERR-1's line on stderr, exact (`spec/errors.md`).
pub fn held_message(url: &str) -> String {
    format!("GatewayLockError: another gateway instance is already listening on {url}")
}

/// ERR-2's line on stderr up to the operating system's words (`spec/errors.md`).
pub fn bind_failed_prefix(url: &str) -> String {
    format!("GatewayLockError: failed to bind gateway socket on {url}: ")
}

/// DOOR-2's line on stderr, exact: a non-loopback host without a token.
pub fn refusing_without_auth(host: &str) -> String {
    format!("Refusing to bind gateway to {host} without auth.")
}

/// DOOR-5's line when the token file holds only whitespace.
pub fn token_file_empty(path: &str) -> String {
    format!("token file {path} is empty")
}

/// DOOR-5's line when the token file cannot be read, up to the operating system's words.
pub fn token_file_unreadable_prefix(path: &str) -> String {
    format!("cannot read token file {path}: ")
}

/// DOOR-6's line when a gateway without a token generated and stored one (`spec/protocol.md`, "The front door").
pub fn token_generated(path: &str) -> String {
    format!("gateway: no token given; generated one and stored it in {path} (mode 0600)")
}

/// DOOR-6's line when a gateway without a token reuses the stored one.
pub fn token_reused(path: &str) -> String {
    format!("gateway: no token given; using the one stored in {path} (mode 0600)")
}

/// OPS-9: a holder's command line is cut after this many characters (after escaping).
pub const COMMAND_CHARS: usize = 512;

/// OPS-9's marker after a cut: ` [... N more characters]`.
pub fn cut_marker(more: usize) -> String {
    format!(" [... {more} more characters]")
}

/// Exit codes of `spec/errors.md`.
pub mod exit {
    /// A graceful shutdown completed and the port is released.
    pub const OK: i32 = 0;
    /// A runtime failure after the lock was taken (also DOOR-5's token file errors).
    pub const RUNTIME: i32 = 1;
    /// Bad usage: unknown flag, bad value.
    pub const USAGE: i32 = 2;
    /// ERR-1: the port is held.
    pub const HELD: i32 = 3;
    /// ERR-2: any other bind failure.
    pub const BIND: i32 = 4;
    /// ERR-1 with a live gateway as the holder (OPS-1).
    pub const HELD_BY_GATEWAY: i32 = 5;
    /// DOOR-2: a non-loopback bind without a token.
    pub const NO_AUTH: i32 = 7;
}

/// Close codes and reasons of `spec/protocol.md`.
pub mod close {
    /// Graceful shutdown (SHUT-1, PROTO-9).
    pub const SERVICE_RESTART: (u16, &str) = (1012, "service restart");
    /// The first request was not `connect` (PROTO-3).
    pub const FIRST_NOT_CONNECT: (u16, &str) = (1008, "invalid handshake: first request must be connect");
    /// Malformed `connect` params (PROTO-3).
    pub const BAD_CONNECT_PARAMS: (u16, &str) = (1008, "invalid connect params");
    /// Wrong or missing token (PROTO-5).
    pub const UNAUTHORIZED: (u16, &str) = (1008, "unauthorized");
    /// No `connect` within the handshake timeout (PROTO-6).
    pub const HANDSHAKE_TIMEOUT: (u16, &str) = (1008, "handshake timeout");
    /// No common protocol version (PROTO-4).
    pub const PROTOCOL_MISMATCH: (u16, &str) = (1002, "protocol mismatch");
    /// A frame over the limit (PROTO-7).
    pub const TOO_LARGE: (u16, &str) = (1009, "frame too large");
    /// A text message that is not UTF-8 (PROTO-16); the reason is not specified.
    pub const INVALID_UTF8: u16 = 1007;
    /// A violation of WebSocket framing, e.g. a reserved opcode (PROTO-16); the reason is not specified.
    pub const FRAMING_VIOLATION: u16 = 1002;
}

/// HTTP statuses of the front door (`spec/protocol.md`).
pub mod status {
    /// A malformed request, or an upgrade whose `Sec-WebSocket-Key` is not the base64 of 16 bytes (PROTO-15).
    pub const BAD_REQUEST: u16 = 400;
    /// A `Host` that names no host the gateway serves (DOOR-7): no health body, no upgrade.
    pub const MISDIRECTED: u16 = 421;
}

/// A `Host` name no gateway serves unless told to (DOOR-7): a DNS-rebinding page's name.
pub const FOREIGN_HOST: &str = "evil.example";

/// The protocol version of `spec/protocol.md`.
pub const PROTOCOL: u64 = 4;
/// Frame limit before `hello-ok` (PROTO-7).
pub const MAX_PREAUTH_PAYLOAD: usize = 64 * 1024;
/// Frame limit after `hello-ok` (PROTO-7, `policy.maxPayload`).
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// `policy.maxBufferedBytes` in `hello-ok`.
pub const MAX_BUFFERED_BYTES: u64 = 2 * 1024 * 1024;
/// The fields of the `health` method's payload (PROTO-8, `spec/protocol.md`): those OpenClaw's CLI
/// renders, then the lock's own view (`ok`, `status`, `pid`, `host` and `port` are judged by value).
pub const HEALTH_FIELDS: [&str; 14] = [
    "ts",
    "durationMs",
    "channels",
    "channelOrder",
    "channelLabels",
    "heartbeatSeconds",
    "defaultAgentId",
    "agents",
    "sessions",
    "version",
    "uptimeMs",
    "connections",
    "clients",
    "profile",
];
/// The methods `hello-ok` lists (PROTO-2).
pub const METHODS: [&str; 4] = ["health", "status", "system-presence", "config.get"];
/// The events `hello-ok` lists (PROTO-2).
pub const EVENTS: [&str; 3] = ["connect.challenge", "tick", "shutdown"];
/// The `shutdown` event's reason (PROTO-9).
pub const SHUTDOWN_REASON: &str = "gateway stopping";
/// Unauthenticated connections a gateway admits by default (DOOR-4).
pub const MAX_UNAUTHENTICATED: usize = 32;
/// The grace period of a graceful shutdown (SHUT-2).
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(500);
/// What the conformance runner allows beyond the grace period for the exit after `SIGTERM` with a
/// silent client (SHUT-2).
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(1);
/// How long a refused start may take with a live holder (LOCK-1's fail-fast bound, `spec/README.md`).
pub const REFUSAL_BOUND: Duration = Duration::from_secs(1);
/// How long from exec to the port accepting connections, with nothing to wait for (CLI-1's bound).
pub const BIND_BOUND: Duration = Duration::from_secs(1);
/// `O_CLOEXEC` as `/proc/<pid>/fdinfo/<fd>` prints it in `flags` (octal 02000000).
pub const O_CLOEXEC_FLAG: u32 = 0o2000000;

/// The text of the spec files that define invariant IDs, embedded at build time.
const SPEC_FILES: [&str; 2] = [include_str!("../../spec/invariants.md"), include_str!("../../spec/protocol.md")];

/// Invariant IDs in the order the spec defines them: `### LOCK-1 — ...` headings and the `- ID`
/// list items of `spec/invariants.md` and `spec/protocol.md`.
pub fn invariant_ids() -> Vec<String> {
    let mut ids = Vec::new();
    for text in SPEC_FILES {
        for line in text.lines() {
            let head = line.strip_prefix("### ").or_else(|| line.strip_prefix("- ")).unwrap_or("");
            let id: String = head.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
            if is_invariant_id(&id) && !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// `PREFIX-N`: upper-case letters, a dash, digits.
fn is_invariant_id(id: &str) -> bool {
    let Some((prefix, number)) = id.rsplit_once('-') else { return false };
    !prefix.is_empty()
        && prefix.split('-').all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase()))
        && !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_bracket_ipv6() {
        assert_eq!(url("127.0.0.1", 1), "ws://127.0.0.1:1");
        assert_eq!(url("::1", 2), "ws://[::1]:2");
        assert_eq!(ready_line("127.0.0.1", 3), "listening on ws://127.0.0.1:3");
        assert_eq!(ready_addr("listening on ws://[::1]:4\n"), Some("[::1]:4".parse().unwrap()));
        assert_eq!(ready_addr("listening on 127.0.0.1:4"), None);
    }

    #[test]
    fn ids_come_from_the_spec() {
        let ids = invariant_ids();
        for id in ["LOCK-1", "LOCK-6", "REL-3", "CLI-1", "ERR-1", "PROTO-1", "DOOR-5"] {
            assert!(ids.contains(&id.to_string()), "{id} missing from {ids:?}");
        }
        assert!(!is_invariant_id("-1") && !is_invariant_id("LOCK-") && !is_invariant_id("lock-1"));
    }
}
