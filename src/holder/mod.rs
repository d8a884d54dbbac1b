//! Who holds a port: the listening process (pid, user, command line) and whether it is a
//! gateway (it answers `GET /healthz` with `"ok":true,"status":"live"`).
//!
//! Used after the lock is refused (to name the holder, `OPS-1`), by `status` (`OPS-2`), `stop`
//! and `run --replace` (`OPS-3`, `OPS-5`), and by the port watch of `--wait` (`OPS-4`). Every
//! lookup is bounded by a deadline: a holder that is stopped (`SIGSTOP`) or hung still accepts
//! connections in the kernel's backlog but never answers, and the lookup then says so.
//!
//! - [`model`]: the [`Holder`] found, its [`Owner`] process and its [`HolderKind`];
//! - [`health`]: the `GET /healthz` client and the interpretation of its reply;
//! - [`watch`]: one connection to a holder, to learn at once when it goes away;
//! - `linux` (the kernel's socket table and `/proc`) or, on every other system, `portable`
//!   (the process is unknown): the only platform-specific code of the lookup.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) mod health;
pub(crate) mod model;
pub(crate) mod watch;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as sys;
#[cfg(not(target_os = "linux"))]
mod portable;
#[cfg(not(target_os = "linux"))]
use portable as sys;

use health::ask_health;
pub use health::{Answer, HealthInfo};
pub use model::{Holder, HolderKind, Owner, Process};
pub(crate) use sys::process_uid;

/// Total bound of the lookup made after a refused lock: the refusal is never delayed more.
pub(crate) const REFUSAL_PROBE_BUDGET: Duration = Duration::from_millis(200);
/// Bound of the lookup made by `gateway status` and `gateway stop`.
pub(crate) const STATUS_PROBE_BUDGET: Duration = Duration::from_secs(1);

/// The warning for a port inside the ephemeral range, if it is (never for port 0, `OPS-1`).
pub(crate) fn ephemeral_warning(port: u16, range: Option<(u16, u16)>) -> Option<String> {
    let (lo, hi) = range?;
    (port != 0 && (lo..=hi).contains(&port)).then(|| {
        format!(
            "port {port} lies inside the ephemeral port range {lo}-{hi} (/proc/sys/net/ipv4/ip_local_port_range): \
             an outgoing connection can occupy it by chance; choose a port outside it"
        )
    })
}

/// Reads the system's ephemeral port range and returns the warning for `port`, if any.
pub fn check_ephemeral_range(port: u16) -> Option<String> {
    if port == 0 {
        return None;
    }
    ephemeral_warning(port, sys::ephemeral_range())
}

/// Looks up who holds `addr`: asks `/healthz` (bounded by `budget`) while looking the listener up
/// in the kernel's socket table.
///
/// The health question runs on its own thread; on loopback a live gateway answers within about a
/// millisecond, and the pid it reports is checked first ([`find_owner`]'s hint), which spares the scan
/// of every process. A holder that does not answer soon only delays the full scan by `HINT_WAIT` (10 ms).
pub fn lookup(addr: SocketAddr, budget: Duration) -> Holder {
    let deadline = Instant::now() + budget;
    let (answer, owner) = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let asked = s.spawn(move || {
            let answer = ask_health(addr, deadline);
            let _ = tx.send(answer.clone());
            answer
        });
        let listener = sys::find_listener(addr);
        let owner = listener.map(|row| {
            let wait = HINT_WAIT.min(deadline.saturating_duration_since(Instant::now()));
            let hint = rx.recv_timeout(wait).ok().as_ref().and_then(Answer::health).and_then(|h| h.pid);
            sys::owner_of(&row, hint, deadline)
        });
        (asked.join().unwrap_or(Answer::NoAnswer), owner)
    });
    // No listener, yet the health question was not refused: the lookup ran while a racing
    // contender was inside `listen(2)` (its socket listens before the kernel lists it), so by now
    // it is listed. Look once more, with the pid it reported.
    let owner = match owner {
        Err(Owner::NoListener) if answer != Answer::Refused => {
            sys::find_listener(addr).map(|row| sys::owner_of(&row, answer.health().and_then(|h| h.pid), deadline))
        }
        owner => owner,
    };
    Holder { addr, owner: owner.unwrap_or_else(|l| l), answer, budget }
}

/// How long [`lookup`] waits for the holder's health answer (and the pid it reports) before it
/// scans every process for the listening socket.
pub(crate) const HINT_WAIT: Duration = Duration::from_millis(10);

/// Finds the process listening on `addr` (Linux: `/proc`; elsewhere [`Owner::Unknown`]), without
/// asking it anything, giving up at `deadline`.
pub fn find_owner(addr: SocketAddr, deadline: Instant) -> Owner {
    match sys::find_listener(addr) {
        Ok(row) => sys::owner_of(&row, None, deadline),
        Err(owner) => owner,
    }
}

/// `status`: who holds `addr`, looked up within one second (`OPS-2`).
pub fn status(addr: SocketAddr) -> Holder {
    lookup(addr, STATUS_PROBE_BUDGET)
}

/// Who holds `addr` after the lock on it was refused, looked up within 200 ms
/// so that the refusal is never delayed more (`OPS-1`).
pub(crate) fn after_refusal(addr: SocketAddr) -> Holder {
    lookup(addr, REFUSAL_PROBE_BUDGET)
}
