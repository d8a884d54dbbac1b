//! Taking a held port over: `gateway run --wait[=DURATION]` and `gateway run --replace` (`OPS-4`, `OPS-5`).
//!
//! Waiting does not rely on polling alone. A [`PortWatch`] keeps one TCP connection to the
//! holder open; the moment it closes (a draining gateway drops idle connections, and the kernel
//! resets every connection still in the backlog when the listener closes) the waiter retries the
//! bind. A poll every [`POLL_INTERVAL`] is the fallback for holders that never close anything
//! (stopped, hung, or holding a socket that does not listen). The bind itself decides between
//! several waiters: the kernel lets exactly one of them listen; the others keep waiting.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::lock::{self, GatewayLockError, WsUrl};
use crate::probe;

/// The fallback poll interval of a waiter.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long `--replace` waits for the old gateway to release the port when `--wait` gives no bound.
pub const DEFAULT_REPLACE_TIMEOUT: Duration = Duration::from_secs(10);

/// How `gateway run` takes the port when it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Takeover {
    /// `--wait`: `None` fails at once; `Some(None)` waits without limit; `Some(Some(d))` waits up to `d`.
    pub wait: Option<Option<Duration>>,
    /// `--replace`: ask a same-user gateway holder to stop first.
    pub replace: bool,
}

/// What one [`PortWatch::wait`] observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// A connection was refused: nothing listens on the address now.
    Refused,
    /// The watched connection closed or was reset: the holder may be gone.
    Closed,
    /// Nothing happened before the poll interval or the deadline.
    Quiet,
}

/// One connection to a port's holder, used to learn at once when the holder goes away.
#[derive(Debug)]
pub struct PortWatch {
    target: SocketAddr,
    conn: Option<TcpStream>,
    refused_before: bool,
    /// When the last two connections were opened, the latest first ([`next_connect_at`]).
    connects: [Option<Instant>; 2],
}

/// When a watch may open its next connection, given when it opened the last two (latest first):
/// at most two per [`POLL_INTERVAL`]. One at once after a close (the holder may be draining, or
/// gone with its listener not yet closed), so a handover is not delayed by the poll; but a holder
/// that closes every connection at once (not a gateway) cannot turn the wait into a busy loop.
pub fn next_connect_at(connects: [Option<Instant>; 2]) -> Option<Instant> {
    connects[1].map(|older| older + POLL_INTERVAL)
}

impl PortWatch {
    /// A watch on `addr` (the wildcard is watched through loopback).
    pub fn new(addr: SocketAddr) -> Self {
        PortWatch { target: probe::connect_target(addr), conn: None, refused_before: false, connects: [None, None] }
    }

    /// Blocks until the watched connection closes, a connection is refused, or the poll
    /// interval (bounded by `until`) passes; never longer.
    pub fn wait(&mut self, until: Instant) -> Observation {
        let slice_end = until.min(Instant::now() + POLL_INTERVAL);
        let remaining = || slice_end.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        let Some(conn) = &mut self.conn else {
            if self.refused_before {
                // Refused twice in a row while the bind still fails (a socket that is bound but
                // does not listen): wait for the poll interval instead of spinning.
                std::thread::sleep(slice_end.saturating_duration_since(Instant::now()));
            } else if let Some(next) = next_connect_at(self.connects) {
                std::thread::sleep(next.min(until).saturating_duration_since(Instant::now()));
            }
            self.connects = [Some(Instant::now()), self.connects[0]];
            return match TcpStream::connect_timeout(&self.target, remaining()) {
                Ok(conn) => {
                    self.refused_before = false;
                    self.conn = Some(conn);
                    Observation::Quiet
                }
                Err(err) if err.kind() == io::ErrorKind::ConnectionRefused => {
                    self.refused_before = true;
                    Observation::Refused
                }
                Err(_) => Observation::Quiet,
            };
        };
        let _ = conn.set_read_timeout(Some(remaining()));
        let mut byte = [0u8; 512];
        match conn.read(&mut byte) {
            Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {
                Observation::Quiet
            }
            // End of stream, a reset, or an answer (a 408 after the head timeout): start over.
            _ => {
                self.conn = None;
                Observation::Closed
            }
        }
    }
}

/// Binds `addr`, waiting while it is held, until `deadline` (`None`: no limit). A timeout
/// gives the normal [`GatewayLockError::AlreadyListening`]; other bind failures end the wait.
pub fn wait_and_bind(addr: SocketAddr, deadline: Option<Instant>) -> Result<TcpListener, GatewayLockError> {
    let mut watch = PortWatch::new(addr);
    loop {
        match lock::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(GatewayLockError::AlreadyListening { .. }) => {}
            Err(other) => return Err(other),
        }
        let until = deadline.unwrap_or_else(|| Instant::now() + POLL_INTERVAL);
        if Instant::now() >= until {
            return Err(GatewayLockError::AlreadyListening { url: WsUrl(addr) });
        }
        watch.wait(until);
    }
}

/// Takes the lock on `addr` as `gateway run` does: the bind first (`LOCK-3`); if the port is held,
/// `--replace` asks a same-user gateway to stop, and `--wait`/`--replace` wait for the port.
pub fn acquire(addr: SocketAddr, how: Takeover) -> Result<TcpListener, GatewayLockError> {
    let refused = match lock::bind(addr) {
        Err(refused @ GatewayLockError::AlreadyListening { .. }) => refused,
        other => return other,
    };
    let started = Instant::now();
    let mut wait = how.wait;
    if how.replace {
        let found = probe::probe(addr, probe::STATUS_PROBE_BUDGET);
        match crate::stop::request_stop(&found) {
            Ok(pid) => {
                tracing::debug!("asked gateway pid {pid} to stop; waiting for {}", WsUrl(addr));
                wait = Some(Some(wait.flatten().unwrap_or(DEFAULT_REPLACE_TIMEOUT)));
            }
            // Nothing is printed before ERR-1's line; the lines after it describe the holder.
            Err(why) => tracing::debug!("not replacing the holder: {why}"),
        }
    }
    match wait {
        None => Err(refused),
        Some(limit) => wait_and_bind(addr, limit.map(|d| started + d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// OPS-4: at most two connections per poll interval: the first two at once, a third only a
    /// poll interval after the second-to-last.
    #[test]
    fn ops4_a_watch_reconnects_at_once_but_never_busily() {
        let t = Instant::now();
        assert_eq!(next_connect_at([None, None]), None);
        assert_eq!(next_connect_at([Some(t), None]), None, "one connection so far: the next at once");
        let later = t + Duration::from_millis(1);
        assert_eq!(next_connect_at([Some(later), Some(t)]), Some(t + POLL_INTERVAL));
    }

    /// OPS-4: the watch wakes on the holder's close (an accepted connection closed, or a backlog
    /// connection reset when the listener closes), not by the poll; nothing listening is `Refused`.
    #[test]
    fn ops4_watch_wakes_when_the_holder_closes() {
        // A holder that accepts, then closes the connection (a draining gateway).
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let mut watch = PortWatch::new(addr);
        assert_eq!(watch.wait(far()), Observation::Quiet, "connected");
        drop(holder.accept().unwrap());
        assert_eq!(watch.wait(far()), Observation::Closed);
        // A holder that never accepts: the connection waits in the backlog and is reset when the
        // listener closes.
        assert_eq!(watch.wait(far()), Observation::Quiet, "connected again");
        drop(holder);
        assert_eq!(watch.wait(far()), Observation::Closed);
        // Nothing listens any more.
        assert_eq!(watch.wait(far()), Observation::Refused);
    }

    /// OPS-4: a bound wait on a held port ends in ERR-1, and binds at once once it is free.
    #[test]
    fn ops4_wait_and_bind_times_out_with_err1_then_binds_when_free() {
        let holder = lock::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = holder.local_addr().unwrap();
        let err = wait_and_bind(addr, Some(Instant::now() + Duration::from_millis(50))).unwrap_err();
        assert_eq!(err.to_string(), format!("another gateway instance is already listening on ws://{addr}"));
        drop(holder);
        wait_and_bind(addr, Some(Instant::now())).unwrap();
    }
}
