//! Taking a held port over: `gateway run --wait[=DURATION]` and `gateway run --replace` (`OPS-4`, `OPS-5`).
//!
//! Waiting does not rely on polling alone. A [`PortWatch`] keeps one TCP connection to the
//! holder open; the moment it closes the waiter retries the bind, with a poll every
//! [`POLL_INTERVAL`] as the fallback. The bind itself decides between several waiters: the kernel
//! lets exactly one of them listen; the others keep waiting. `--replace` asks the holder to stop
//! through [`crate::stop`]; both sit on top of [`crate::holder`].

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::holder;
use crate::holder::watch::{PortWatch, POLL_INTERVAL};
use crate::lock::{self, GatewayLockError, WsUrl};

/// How long `--replace` waits for the old gateway to release the port when `--wait` gives no bound.
pub(crate) const DEFAULT_REPLACE_TIMEOUT: Duration = Duration::from_secs(10);

/// How `gateway run` takes the port when it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Takeover {
    /// `--wait`: `None` fails at once; `Some(None)` waits without limit; `Some(Some(d))` waits up to `d`.
    pub wait: Option<Option<Duration>>,
    /// `--replace`: ask a same-user gateway holder to stop first.
    pub replace: bool,
}

/// Binds `addr`, waiting while it is held, until `deadline` (`None`: no limit). A timeout
/// gives the normal [`GatewayLockError::AlreadyListening`]; other bind failures end the wait.
pub(crate) fn wait_and_bind(addr: SocketAddr, deadline: Option<Instant>) -> Result<TcpListener, GatewayLockError> {
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
        let found = holder::status(addr);
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
