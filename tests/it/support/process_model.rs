//! What the proptest suites over real processes share: the signals the state machines
//! (`tests/it/prop_processes.rs`, `tests/it/prop_operations.rs`) send, the life of a process as
//! their models see it, ending processes, ports and scratch directories; and the proptest
//! configuration of those and of `tests/prop_verify.rs`.

use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use proptest::test_runner::Config;

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
    let end = Instant::now() + DEADLINE;
    while gateway_harness::sockets::is_stopped(pid.as_raw() as u32) != want {
        assert!(Instant::now() < end, "pid {pid} did not become {}", if want { "stopped" } else { "running" });
        // Polling the kernel's process state; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The proptest configuration: `default_cases` unless `PROPTEST_CASES` says otherwise; shrinking
/// bounded in steps (`max_shrink_iters`) and in time, since each step re-runs real processes and a
/// broken gateway must fail CI soon.
pub fn config(default_cases: u32, max_shrink_iters: u32) -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default_cases);
    Config { cases, max_shrink_iters, max_shrink_time: 120_000, ..Config::default() }
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

/// A child process that is continued and killed when dropped, unless it has been reaped:
/// nothing outlives its case, also when an assertion fails mid-step (a stopped process is
/// continued first, so that it dies at once). Derefs to the [`Child`].
pub struct OwnedChild(Child);

impl OwnedChild {
    /// Takes ownership of `child`.
    pub fn new(child: Child) -> Self {
        OwnedChild(child)
    }

    /// The child's pid.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.0.id() as i32)
    }
}

impl std::ops::Deref for OwnedChild {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for OwnedChild {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        gateway_harness::proc::kill_and_reap(&mut self.0, false);
    }
}
