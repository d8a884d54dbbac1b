//! `gateway stop`: ask the gateway holding a port to shut down gracefully, and wait until the
//! port is released (`OPS-3`). Also used by `gateway run --replace`.
//!
//! The holder is signalled (`SIGTERM`) only if it is verifiably a gateway of this user: it
//! answered `/healthz` as a live gateway, the pid it reports is the pid found listening in
//! `/proc`, and that process belongs to this user. A foreign or silent holder is never touched.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::lock::WsUrl;
use crate::probe::{self, Answer, Owner, Probe};
use crate::takeover::{Observation, PortWatch};

/// Exit codes of `gateway stop` (`spec/cli.md`).
pub mod exit_code {
    /// The gateway stopped and the port is released.
    pub const STOPPED: u8 = 0;
    /// Nothing listens on the port: nothing to stop.
    pub const NOT_RUNNING: u8 = 3;
    /// The holder is not a gateway of this user (or cannot be verified): nothing was signalled.
    pub const REFUSED: u8 = 4;
    /// The gateway was signalled but still held the port at the timeout.
    pub const TIMED_OUT: u8 = 5;
}

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

impl StopError {
    /// The exit code of `gateway stop` for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            StopError::NotRunning { .. } => exit_code::NOT_RUNNING,
            StopError::TimedOut { .. } | StopError::Signal { .. } => exit_code::TIMED_OUT,
            _ => exit_code::REFUSED,
        }
    }
}

/// Checks that the probed holder is a gateway of this user (see the module doc); returns its pid.
pub fn verify(found: &Probe) -> Result<u32, StopError> {
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
    let owner_uid = process_uid(process.pid).unwrap_or(process.uid);
    if process.uid != me || owner_uid != me {
        return Err(StopError::OtherUser { url, pid: process.pid, uid: owner_uid.max(process.uid), me });
    }
    Ok(process.pid)
}

/// Verifies the holder ([`verify`]) and sends it `SIGTERM`; returns its pid.
pub fn request_stop(found: &Probe) -> Result<u32, StopError> {
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

/// The uid owning `/proc/<pid>` (the process's real owner), where there is a `/proc`.
fn process_uid(pid: u32) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}")).ok().map(|m| m.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        None
    }
}

/// Waits until `pid` no longer holds `addr`: a connection is refused, or another process listens
/// there now. Wakes when the watched connection closes, polls as a fallback; bounded by `deadline`.
pub fn wait_released(addr: SocketAddr, pid: u32, deadline: Instant) -> Result<(), Duration> {
    let started = Instant::now();
    let mut watch = PortWatch::new(addr);
    loop {
        match watch.wait(deadline) {
            Observation::Refused => return Ok(()),
            Observation::Closed | Observation::Quiet => {
                match probe::find_owner(addr, deadline) {
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

/// `gateway stop`: verify, signal, wait; prints the outcome and returns the exit code.
pub fn stop(addr: SocketAddr, timeout: Duration) -> u8 {
    let started = Instant::now();
    let found = probe::probe(addr, probe::STATUS_PROBE_BUDGET);
    let pid = match request_stop(&found) {
        Ok(pid) => pid,
        Err(err) => {
            eprintln!("{err}");
            for line in found.describe() {
                eprintln!("{line}");
            }
            return err.exit_code();
        }
    };
    match wait_released(addr, pid, started + timeout) {
        Ok(()) => {
            let took = started.elapsed();
            crate::cli::print_line(format_args!(
                "stopped gateway pid {pid} on {}: port released after {} ms",
                WsUrl(addr),
                took.as_millis()
            ));
            exit_code::STOPPED
        }
        Err(waited) => {
            let err = StopError::TimedOut { url: WsUrl(addr), pid, waited };
            eprintln!("{err}");
            err.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{HealthInfo, Process};

    fn probe_of(answer: Answer, owner: Owner) -> Probe {
        Probe { addr: "127.0.0.1:9".parse().unwrap(), owner, answer, budget: Duration::from_millis(200) }
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
        let cases = [
            (probe_of(Answer::Refused, Owner::NoListener), exit_code::NOT_RUNNING),
            (probe_of(Answer::Other("answered \"HTTP/1.1 404\"".into()), Owner::Found(me())), exit_code::REFUSED),
            (probe_of(Answer::NoAnswer, Owner::Found(me())), exit_code::REFUSED),
            (probe_of(live(pid + 1), Owner::Found(me())), exit_code::REFUSED),
            (probe_of(live(pid), Owner::SocketOnly { uid: 0 }), exit_code::REFUSED),
            (probe_of(live(pid), Owner::Unknown), exit_code::REFUSED),
            (probe_of(live(pid), Owner::Found(Process { uid: current_uid() + 1, ..me() })), exit_code::REFUSED),
        ];
        for (found, code) in cases {
            let err = verify(&found).unwrap_err();
            assert_eq!(err.exit_code(), code, "{err}");
        }
    }
}
