//! What the proptest suites over real processes share: the signals the state machines
//! (`tests/it/prop_processes.rs`, `tests/it/prop_operations.rs`) send, the life of a process as
//! their models see it, ports and scratch directories.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::DEADLINE;

/// A signal an operation sends to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Kill,
    Term,
    Int,
    Stop,
    Cont,
}

impl Sig {
    /// The real signal.
    pub fn nix(self) -> Signal {
        match self {
            Sig::Kill => Signal::SIGKILL,
            Sig::Term => Signal::SIGTERM,
            Sig::Int => Signal::SIGINT,
            Sig::Stop => Signal::SIGSTOP,
            Sig::Cont => Signal::SIGCONT,
        }
    }
}

/// Where an instance is in its life, as a model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Alive,
    /// Stopped by `SIGSTOP`; `exit_on_cont` when a `SIGTERM`/`SIGINT` is pending.
    Stopped {
        exit_on_cont: bool,
    },
    Gone,
}

impl Life {
    /// The life after `sig`, for a process that ends on `SIGTERM`/`SIGINT` (gracefully or not)
    /// and, when stopped, only once continued.
    pub fn after(self, sig: Sig) -> Life {
        match (self, sig) {
            (_, Sig::Kill) => Life::Gone,
            (Life::Alive, Sig::Term | Sig::Int) => Life::Gone,
            (Life::Stopped { .. }, Sig::Term | Sig::Int) => Life::Stopped { exit_on_cont: true },
            (Life::Alive, Sig::Stop) => Life::Stopped { exit_on_cont: false },
            (Life::Stopped { exit_on_cont: true }, Sig::Cont) => Life::Gone,
            (Life::Stopped { exit_on_cont: false }, Sig::Cont) => Life::Alive,
            (life, _) => life,
        }
    }
}

/// Waits (bounded) until the kernel reports `pid` as stopped (`want`) or running again: a
/// `SIGSTOP` takes effect when the target next runs, after `kill` has returned.
pub fn wait_stopped(pid: Pid, want: bool) {
    gateway_harness::proc::await_stopped(pid.as_raw() as u32, want, DEADLINE).unwrap_or_else(|e| panic!("{e}"));
}

/// `n` distinct free loopback ports from the OS for one case (released again before it uses them).
pub fn free_ports(n: usize) -> Vec<u16> {
    gateway_harness::net::free_ports(n).expect("free ports")
}

/// A fresh scratch directory path for one case (`<tmp>/<prefix>-<pid>-<case>`; not created).
pub fn case_dir(prefix: &str) -> PathBuf {
    static CASE: AtomicUsize = AtomicUsize::new(0);
    let case = CASE.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{case}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
