//! One connection to a port's holder, kept open to learn at once when the holder goes away
//! (`OPS-4`): a draining gateway drops idle connections, and the kernel resets every connection
//! still in the backlog when the listener closes. A poll every [`POLL_INTERVAL`] is the fallback
//! for holders that never close anything (stopped, hung, or a socket that does not listen).

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::health::connect_target;

/// The fallback poll interval of a waiter.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What one [`PortWatch::wait`] observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Observation {
    /// A connection was refused: nothing listens on the address now.
    Refused,
    /// The watched connection closed or was reset: the holder may be gone.
    Closed,
    /// Nothing happened before the poll interval or the deadline.
    Quiet,
}

/// One connection to a port's holder, used to learn at once when the holder goes away.
#[derive(Debug)]
pub(crate) struct PortWatch {
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
pub(crate) fn next_connect_at(connects: [Option<Instant>; 2]) -> Option<Instant> {
    connects[1].map(|older| older + POLL_INTERVAL)
}

impl PortWatch {
    /// A watch on `addr` (the wildcard is watched through loopback).
    pub(crate) fn new(addr: SocketAddr) -> Self {
        PortWatch { target: connect_target(addr), conn: None, refused_before: false, connects: [None, None] }
    }

    /// Blocks until the watched connection closes, a connection is refused, or the poll
    /// interval (bounded by `until`) passes; never longer.
    pub(crate) fn wait(&mut self, until: Instant) -> Observation {
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
}
