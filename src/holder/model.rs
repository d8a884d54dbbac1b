//! The holder of a port, as the lookup found it: its process and its answer.

use std::net::SocketAddr;
use std::time::Duration;

use super::health::{Answer, HealthInfo};

/// The process found listening on the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    /// Its pid.
    pub pid: u32,
    /// The uid owning the socket.
    pub uid: u32,
    /// Its command line, arguments joined by spaces, escaped and cut for display (OPS-9; `None` if
    /// unreadable).
    pub command: Option<String>,
    /// It is stopped (`SIGSTOP`, state `T` in `/proc/<pid>/stat`).
    pub stopped: bool,
}

/// What is known about the process listening on the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// Found in `/proc`.
    Found(Process),
    /// A listening socket was found (owned by `uid`), but no process of this host shows it
    /// (another user's process we may not inspect, or one that is exiting).
    SocketOnly {
        /// The uid owning the socket.
        uid: u32,
    },
    /// A listening socket was found (owned by `uid`), but the search for its process ran out of
    /// time (a busy system); the probe's bound wins.
    OutOfTime {
        /// The uid owning the socket.
        uid: u32,
    },
    /// No listening socket on the address in `/proc/net/tcp{,6}`.
    NoListener,
    /// This system has no `/proc` to ask.
    Unknown,
}

/// What is holding an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderKind {
    /// Nothing listens there.
    Free,
    /// A live gateway answered.
    Gateway,
    /// Something that is not a gateway answered.
    Foreign,
    /// Held, but no answer before the deadline.
    NotAnswering,
}

impl HolderKind {
    /// The name used in `gateway status --json` (`"state"`).
    pub fn name(self) -> &'static str {
        match self {
            HolderKind::Free => "free",
            HolderKind::Gateway => "gateway",
            HolderKind::Foreign => "foreign",
            HolderKind::NotAnswering => "not-answering",
        }
    }
}

/// Who holds an address, as [`super::lookup`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The address looked up.
    pub addr: SocketAddr,
    /// The listening process, as far as it is known.
    pub owner: Owner,
    /// The holder's answer to `GET /healthz`.
    pub answer: Answer,
    /// How long the health question was allowed to take.
    pub budget: Duration,
}

impl Holder {
    /// Classifies the holder from its answer.
    pub fn kind(&self) -> HolderKind {
        match &self.answer {
            Answer::Refused => HolderKind::Free,
            Answer::Gateway(_) => HolderKind::Gateway,
            Answer::Other(_) => HolderKind::Foreign,
            Answer::NoAnswer => HolderKind::NotAnswering,
        }
    }

    /// The health info, if a gateway answered.
    pub fn health(&self) -> Option<&HealthInfo> {
        self.answer.health()
    }

    /// The listening process, if found.
    pub fn process(&self) -> Option<&Process> {
        match &self.owner {
            Owner::Found(p) => Some(p),
            _ => None,
        }
    }

    /// The pid of a gateway that may be asked to stop: it answered as a live gateway, and the
    /// pid it reports is the pid found listening in `/proc` (`OPS-3`). `None` otherwise.
    pub fn verified_gateway_pid(&self) -> Option<u32> {
        let (health, process) = (self.health()?, self.process()?);
        (health.pid == Some(process.pid)).then_some(process.pid)
    }
}
