//! `gateway stop`: ask the gateway holding a port to shut down gracefully, and wait until the
//! port is released (`OPS-3`). Also used by `gateway run --replace`.
//!
//! The holder is signalled (`SIGTERM`) only if it is verifiably a gateway of this user: it
//! answered `/healthz` as a live gateway, the pid it reports is the pid found listening in
//! `/proc`, and that process belongs to this user. A foreign or silent holder is never touched.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::holder::watch::{Observation, PortWatch};
use crate::holder::{self, Answer, Holder, Owner};
use crate::lock::WsUrl;

/// Why a holder was not asked to stop, or did not stop.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    /// Nothing listens on the address.
    #[error("no gateway is listening on {url}: the port is free")]
    NotRunning {
        /// The address.
        url: WsUrl,
    },
    /// The holder did not answer as a live gateway.
    #[error("refusing to stop the holder of {url}: it did not answer as a live gateway ({why})")]
    NotAGateway {
        /// The address.
        url: WsUrl,
        /// What it did instead.
        why: String,
    },
    /// The holder answered as a gateway, but its process could not be verified.
    #[error("refusing to stop the holder of {url}: {why}")]
    Unverified {
        /// The address.
        url: WsUrl,
        /// What could not be verified.
        why: String,
    },
    /// The gateway belongs to another user.
    #[error("refusing to stop the gateway on {url}: pid {pid} belongs to uid {uid}, not to this user (uid {me})")]
    OtherUser {
        /// The address.
        url: WsUrl,
        /// Its pid.
        pid: u32,
        /// Its uid.
        uid: u32,
        /// Our effective uid.
        me: u32,
    },
    /// Sending the signal failed.
    #[error("could not signal gateway pid {pid}: {source}")]
    Signal {
        /// The pid.
        pid: u32,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The port was still held by the gateway at the timeout.
    #[error("gateway pid {pid} still holds {url} after {}", humantime::format_duration(*.waited))]
    TimedOut {
        /// The address.
        url: WsUrl,
        /// The pid.
        pid: u32,
        /// How long we waited.
        waited: Duration,
    },
}

/// Checks that the probed holder is a gateway of this user (see the module doc); returns its pid.
pub(crate) fn verify(found: &Holder) -> Result<u32, StopError> {
    let url = WsUrl(found.addr);
    let health = match &found.answer {
        Answer::Refused => return Err(StopError::NotRunning { url }),
        Answer::Gateway(health) => health,
        Answer::Other(why) => return Err(StopError::NotAGateway { url, why: format!("GET /healthz {why}") }),
        Answer::NoAnswer => {
            return Err(StopError::NotAGateway { url, why: format!("no answer to GET /healthz within {} ms", found.budget.as_millis()) })
        }
    };
    let process = match &found.owner {
        Owner::Found(p) => p,
        Owner::SocketOnly { uid } | Owner::OutOfTime { uid } => {
            return Err(StopError::Unverified { url, why: format!("the listening socket's process (uid {uid}) is not visible from here") })
        }
        Owner::NoListener | Owner::Unknown => {
            return Err(StopError::Unverified { url, why: "the listening process cannot be found on this system".into() })
        }
    };
    if health.pid != Some(process.pid) {
        return Err(StopError::Unverified { url, why: format!("it reports pid {:?} but pid {} is listening", health.pid, process.pid) });
    }
    let me = current_uid();
    let owner_uid = holder::process_uid(process.pid).unwrap_or(process.uid);
    if process.uid != me || owner_uid != me {
        return Err(StopError::OtherUser { url, pid: process.pid, uid: owner_uid.max(process.uid), me });
    }
    Ok(process.pid)
}

/// Verifies the holder ([`verify`]) and sends it `SIGTERM`; returns its pid.
pub(crate) fn request_stop(found: &Holder) -> Result<u32, StopError> {
    let pid = verify(found)?;
    terminate(pid).map_err(|source| StopError::Signal { pid, source })?;
    Ok(pid)
}

#[cfg(unix)]
fn terminate(pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn terminate(_pid: u32) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

#[cfg(unix)]
fn current_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

#[cfg(not(unix))]
fn current_uid() -> u32 {
    0
}

/// Waits until `pid` no longer holds `addr`: a connection is refused, or another process listens
/// there now. Wakes when the watched connection closes, polls as a fallback; bounded by `deadline`.
pub(crate) fn wait_released(addr: SocketAddr, pid: u32, deadline: Instant) -> Result<(), Duration> {
    let started = Instant::now();
    let mut watch = PortWatch::new(addr);
    loop {
        match watch.wait(deadline) {
            Observation::Refused => return Ok(()),
            Observation::Closed | Observation::Quiet => {
                match holder::find_owner(addr, deadline) {
                    Owner::Found(p) if p.pid == pid => {}
                    // Not visible (or the scan ran out of time): keep watching.
                    Owner::SocketOnly { .. } | Owner::OutOfTime { .. } => {}
                    Owner::Unknown => {}
                    Owner::Found(_) | Owner::NoListener => return Ok(()),
                }
            }
        }
        if Instant::now() >= deadline {
            return Err(started.elapsed());
        }
    }
}

/// A gateway that stopped: it released the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopDone {
    /// The gateway's pid.
    pub pid: u32,
    /// From the start of [`stop`] until the port was released.
    pub took: Duration,
}

/// Why [`stop`] did not stop a gateway.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct StopFailed {
    /// What went wrong.
    pub error: StopError,
    /// Who holds the port, when the holder was refused before any signal was sent.
    pub holder: Option<Box<Holder>>,
}

/// `stop`: looks up who holds `addr`, verifies it is a gateway of this user, sends it `SIGTERM`
/// and waits up to `timeout` until the port is released (`OPS-3`).
pub fn stop(addr: SocketAddr, timeout: Duration) -> Result<StopDone, StopFailed> {
    let started = Instant::now();
    let found = holder::status(addr);
    let pid = request_stop(&found).map_err(|error| StopFailed { error, holder: Some(Box::new(found)) })?;
    match wait_released(addr, pid, started + timeout) {
        Ok(()) => Ok(StopDone { pid, took: started.elapsed() }),
        Err(waited) => Err(StopFailed { error: StopError::TimedOut { url: WsUrl(addr), pid, waited }, holder: None }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::holder::{HealthInfo, Process};

    fn probe_of(answer: Answer, owner: Owner) -> Holder {
        Holder { addr: "127.0.0.1:9".parse().unwrap(), owner, answer, budget: Duration::from_millis(200) }
    }

    fn me() -> Process {
        Process { pid: std::process::id(), uid: current_uid(), command: None, stopped: false }
    }

    fn live(pid: u32) -> Answer {
        Answer::Gateway(HealthInfo { pid: Some(pid), ..HealthInfo::default() })
    }

    /// OPS-3: only a live gateway whose reported pid is the listening pid, of this user, is verified.
    #[test]
    fn ops3_verify_accepts_only_a_same_user_gateway_whose_pid_matches() {
        let pid = std::process::id();
        assert_eq!(verify(&probe_of(live(pid), Owner::Found(me()))).unwrap(), pid);
        // Nothing listens: "not running" (`true`); anything else unverified: refused, never signalled.
        let cases = [
            (probe_of(Answer::Refused, Owner::NoListener), true),
            (probe_of(Answer::Other("answered \"HTTP/1.1 404\"".into()), Owner::Found(me())), false),
            (probe_of(Answer::NoAnswer, Owner::Found(me())), false),
            (probe_of(live(pid + 1), Owner::Found(me())), false),
            (probe_of(live(pid), Owner::SocketOnly { uid: 0 }), false),
            (probe_of(live(pid), Owner::Unknown), false),
            (probe_of(live(pid), Owner::Found(Process { uid: current_uid() + 1, ..me() })), false),
        ];
        for (found, not_running) in cases {
            let err = verify(&found).unwrap_err();
            let refused = matches!(err, StopError::NotAGateway { .. } | StopError::Unverified { .. } | StopError::OtherUser { .. });
            assert_eq!((matches!(err, StopError::NotRunning { .. }), refused), (not_running, !not_running), "{err}");
        }
    }
}
