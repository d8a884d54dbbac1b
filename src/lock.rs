//! The lock: binding the gateway's listening socket *is* taking the lock.
//!
//! There is no lock file and no PID file. The kernel holds the lock for as long as the
//! listening socket is open, and releases it on any exit of the process (clean exit, crash,
//! `SIGKILL`). This module owns the socket options that make the bind exclusive, and the
//! mapping of bind failures onto [`GatewayLockError`].

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// The port a gateway listens on when none is given.
pub const DEFAULT_PORT: u16 = 18789;

/// The host a gateway listens on when none is given.
pub const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Backlog of the listening socket.
const LISTEN_BACKLOG: i32 = 1024;

/// The WebSocket URL of a gateway address, as it appears in every message:
/// `ws://127.0.0.1:18789`, or `ws://[::1]:18789` for IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WsUrl(pub SocketAddr);

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `SocketAddr`'s Display already brackets IPv6 hosts.
        write!(f, "ws://{}", self.0)
    }
}

/// Why the lock could not be taken. The Display of each variant is the exact message of
/// `spec/errors.md`; the process prints it as `GatewayLockError: <message>`.
#[derive(Debug, thiserror::Error)]
pub enum GatewayLockError {
    /// The address is already bound by a listener: another gateway or any other process.
    #[error("another gateway instance is already listening on {url}")]
    AlreadyListening {
        /// The address that was asked for.
        url: WsUrl,
    },
    /// Any other failure to create, bind or listen on the socket.
    #[error("failed to bind gateway socket on {url}: {source}")]
    Bind {
        /// The address that was asked for.
        url: WsUrl,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl GatewayLockError {
    fn from_io(url: WsUrl, err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::AddrInUse {
            GatewayLockError::AlreadyListening { url }
        } else {
            GatewayLockError::Bind { url, source: err }
        }
    }

    /// The address the failed bind asked for.
    pub fn url(&self) -> WsUrl {
        match self {
            GatewayLockError::AlreadyListening { url } | GatewayLockError::Bind { url, .. } => *url,
        }
    }
}

/// Takes the lock: creates an exclusive, close-on-exec, non-blocking listening socket on `addr`.
///
/// - never `SO_REUSEPORT`, which would let a second listener share the port;
/// - `SO_REUSEADDR` on Unix, so that a successor binds at once while connections of a dead
///   holder linger in `TIME_WAIT` (on Linux it never lets two sockets *listen* on one address);
/// - IPv6 sockets are IPv6-only, so the lock's scope is one address family;
/// - close-on-exec (socket2 creates sockets with `SOCK_CLOEXEC`), so no child keeps the port.
///
/// `EADDRINUSE` from `bind` *or* `listen` (two contenders may both bind with `SO_REUSEADDR`
/// before either listens; only one `listen` succeeds) maps to
/// [`GatewayLockError::AlreadyListening`]; every other failure to [`GatewayLockError::Bind`].
/// A refused `listen` is retried (`listen_retrying`): Linux marks a socket listening before it
/// checks the port, so two simultaneous `listen` calls can each see the other and both fail.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, GatewayLockError> {
    let url = WsUrl(addr);
    let fail = |err| GatewayLockError::from_io(url, err);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    set_exclusive(&socket).map_err(fail)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(fail)?;
    }
    socket.bind(&addr.into()).map_err(fail)?;
    listen_retrying(|| socket.listen(LISTEN_BACKLOG)).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(socket.into())
}

/// How often a `listen` refused with `EADDRINUSE` is tried in all.
const LISTEN_ATTEMPTS: usize = 4;

/// Calls `listen` until it succeeds, fails otherwise than with `EADDRINUSE`, or has been refused
/// [`LISTEN_ATTEMPTS`] times (LOCK-6). A real holder refuses every attempt at once; two
/// contenders whose simultaneous `listen` calls both failed (each saw the other's socket marked
/// listening before the kernel had checked it) are most unlikely to collide again: one of their
/// retries takes the port.
pub(crate) fn listen_retrying(mut listen: impl FnMut() -> io::Result<()>) -> io::Result<()> {
    let mut attempt = 1;
    loop {
        match listen() {
            Err(err) if err.kind() == io::ErrorKind::AddrInUse && attempt < LISTEN_ATTEMPTS => {
                attempt += 1;
                std::thread::yield_now();
            }
            result => return result,
        }
    }
}

#[cfg(unix)]
fn set_exclusive(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_address(true)
}

// Elsewhere (Windows) an exclusive bind needs `SO_EXCLUSIVEADDRUSE`, since `SO_REUSEADDR` there
// lets a second socket share the port. No check of this project can build or test such a target,
// so the crate refuses to build rather than take a lock it cannot vouch for (README.md, Platforms).
#[cfg(not(unix))]
compile_error!("gateway-lock takes its lock with Unix socket semantics; this target is not supported (README.md, Platforms)");

/// Why a `--host` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The value was empty.
    #[error("host must not be empty")]
    Empty,
    /// The value was neither `localhost` nor a literal IP address.
    #[error("host must be a literal IP address (127.0.0.1, ::1, ...) or `localhost`, not `{0}`")]
    NotLiteral(String),
}

/// Parses a `--host` value: a literal IPv4 or IPv6 address (IPv6 optionally in brackets), or
/// `localhost`, which means `127.0.0.1` only. Names are never resolved: a name with several
/// addresses would tempt a second try on another address, and two gateways would then hold
/// "the same" port.
pub fn parse_host(value: &str) -> Result<IpAddr, HostError> {
    if value.is_empty() {
        return Err(HostError::Empty);
    }
    if value.eq_ignore_ascii_case("localhost") {
        return Ok(DEFAULT_HOST);
    }
    let literal = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')).unwrap_or(value);
    literal.parse().map_err(|_| HostError::NotLiteral(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_brackets_ipv6() {
        let v6: SocketAddr = "[::1]:18789".parse().unwrap();
        assert_eq!(WsUrl(v6).to_string(), "ws://[::1]:18789");
        let v4: SocketAddr = "127.0.0.1:18789".parse().unwrap();
        assert_eq!(WsUrl(v4).to_string(), "ws://127.0.0.1:18789");
    }

    #[test]
    fn host_parsing() {
        assert_eq!(parse_host("localhost"), Ok(DEFAULT_HOST));
        assert_eq!(parse_host("::1"), Ok("::1".parse().unwrap()));
        assert_eq!(parse_host("[::1]"), Ok("::1".parse().unwrap()));
        assert_eq!(parse_host(""), Err(HostError::Empty));
        assert!(matches!(parse_host("example.com"), Err(HostError::NotLiteral(_))));
    }

    /// LOCK-6: a `listen` refused with `EADDRINUSE` is tried again, a bounded number of times;
    /// other errors are not retried.
    #[test]
    fn lock6_refused_listen_is_retried_a_bounded_number_of_times() {
        let in_use = || io::Error::from(io::ErrorKind::AddrInUse);
        let mut calls = 0;
        let once_refused = listen_retrying(|| {
            calls += 1;
            if calls == 1 {
                Err(in_use())
            } else {
                Ok(())
            }
        });
        assert!(once_refused.is_ok() && calls == 2, "a simultaneous listen that failed once gets the port");
        let mut calls = 0;
        let held = listen_retrying(|| {
            calls += 1;
            Err(in_use())
        });
        assert_eq!((held.unwrap_err().kind(), calls), (io::ErrorKind::AddrInUse, LISTEN_ATTEMPTS), "a real holder");
        let mut calls = 0;
        let other = listen_retrying(|| {
            calls += 1;
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        });
        assert_eq!((other.unwrap_err().kind(), calls), (io::ErrorKind::PermissionDenied, 1));
    }

    #[test]
    fn second_bind_is_already_listening() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let err = bind(addr).unwrap_err();
        assert_eq!(err.to_string(), format!("another gateway instance is already listening on ws://{addr}"));
    }

    /// REL-3: the listener is close-on-exec: a child started while it is held does not keep the
    /// port once the holder closes it.
    #[cfg(unix)]
    #[test]
    fn rel3_child_does_not_inherit_the_listener() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut child = std::process::Command::new("sleep").arg("600").spawn().expect("spawn sleep");
        drop(listener);
        // Other tests of this binary spawn processes in parallel: between fork and exec such a
        // child shares every descriptor of this process for a moment. A child that inherited the
        // listener (`sleep 600`) would hold it for the whole deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut rebind = bind(addr);
        while rebind.is_err() && std::time::Instant::now() < deadline {
            // Polling the port with a deadline; nothing to be woken by.
            std::thread::sleep(std::time::Duration::from_millis(10));
            rebind = bind(addr);
        }
        let _ = child.kill();
        let _ = child.wait();
        rebind.unwrap_or_else(|e| panic!("the child kept {addr}: {e}"));
    }
}
