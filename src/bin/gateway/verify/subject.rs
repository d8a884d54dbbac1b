//! The implementation under verification, started and watched from outside with the black-box
//! harness (`gateway-harness`): an executable called as `EXE run --host 127.0.0.1 --port P`, or a
//! command template like the conformance runner's (`{port}`, `{host}`, `{token}`). Instances of a
//! template run each in a fresh working directory, `HOME` and XDG directories of its own (removed
//! once it is reaped); those of an executable share one such set for the run. Readiness is the
//! ready line or, for an implementation without one, its holding a listening socket on the port.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gateway_harness::proc::{shell_quoted, Launch, Proc};
use gateway_harness::scratch::{self, Scratch};
use gateway_harness::{sockets, spec};
use nix::sys::signal::Signal;

use super::schedule::KillSignal;
use super::VerifyError;
use crate::cli::ReadyBy;

/// The host every instance is started on.
const HOST: &str = "127.0.0.1";

/// How to start an instance.
#[derive(Debug, Clone)]
pub enum Command {
    /// An executable taking `run --host H --port P` (this one by default).
    Exe(PathBuf),
    /// A shell command with `{port}` (and optionally `{host}`, `{token}`).
    Template(String),
}

/// What a started instance did first.
#[derive(Debug)]
pub enum Start {
    /// It became ready.
    Ready,
    /// It exited without becoming ready.
    Exited {
        /// What it printed on stdout.
        stdout: String,
        /// Its exit code (`None`: killed by a signal).
        code: Option<i32>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Neither within the deadline (it has been killed).
    Hung,
}

/// Where and how instances are started.
pub struct Subject {
    command: Command,
    port: u16,
    ready: ReadyBy,
    token: String,
    /// The directories every instance of an executable shares (a gateway's state, such as its
    /// generated token, lives on from one start to the next as on a real host); `None` for a
    /// template, whose instances each get fresh ones, as in the conformance runner.
    shared: Option<scratch::Instance>,
    scratch: Scratch,
}

impl Subject {
    /// A subject on `port` with a fresh scratch directory (removed when dropped).
    pub fn new(command: Command, port: u16, ready: ReadyBy) -> Result<Subject, VerifyError> {
        let scratch = Scratch::new("gateway-verify").map_err(VerifyError::Scratch)?;
        let token = format!("verify-{:016x}", rand::random::<u64>());
        let shared = match command {
            Command::Exe(_) => Some(scratch.instance().map_err(VerifyError::Scratch)?),
            Command::Template(_) => None,
        };
        Ok(Subject { command, port, ready, token, shared, scratch })
    }

    fn launch(&self) -> Launch {
        let port = self.port.to_string();
        match &self.command {
            Command::Exe(exe) => Launch::Exec(exe.clone(), ["run", "--host", HOST, "--port", &port].map(String::from).to_vec()),
            Command::Template(template) => {
                Launch::Shell(template.replace("{port}", &port).replace("{host}", HOST).replace("{token}", &shell_quoted(&self.token)))
            }
        }
    }

    /// Starts an instance (waiting for nothing), with `GATEWAY_LOG=warn` in its own directories.
    pub fn spawn(&self) -> Result<Instance, VerifyError> {
        let launch = self.launch();
        let what = match &launch {
            Launch::Exec(exe, _) => exe.display().to_string(),
            Launch::Shell(line) => line.clone(),
        };
        let dirs = match &self.shared {
            Some(_) => None,
            None => Some(self.scratch.instance().map_err(VerifyError::Scratch)?),
        };
        let mut cmd = launch.command();
        if let Some(apply) = dirs.as_ref().or(self.shared.as_ref()) {
            apply.apply(&mut cmd);
        }
        cmd.env("GATEWAY_LOG", "warn");
        let proc = Proc::spawn(cmd, Stdio::null(), false).map_err(|source| VerifyError::Spawn { what, source })?;
        Ok(Instance { proc, dirs, reaped: false, port: self.port, ready: self.ready })
    }
}

/// A started instance. It stays unreaped (its pid cannot be reused) until [`Instance::wait_exit`]
/// has seen its exit, so signalling it is always safe; killed, reaped and its directories removed
/// when dropped.
pub struct Instance {
    proc: Proc,
    /// Its own directories (removed when dropped), unless it shares the subject's.
    dirs: Option<scratch::Instance>,
    reaped: bool,
    port: u16,
    ready: ReadyBy,
}

impl Instance {
    /// Delivers `signal` unless the instance has been reaped; true if delivered.
    pub fn signal(&self, signal: KillSignal) -> bool {
        !self.reaped && self.proc.signal(nix_signal(signal)).is_ok()
    }

    /// Waits for the exit and reaps; `None` at the deadline.
    pub fn wait_exit(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let status = self.proc.wait(deadline.saturating_duration_since(Instant::now())).ok()?;
        self.reaped = true;
        Some(status)
    }

    /// Kills (SIGKILL) and reaps.
    pub fn kill_and_reap(&mut self) {
        self.proc.kill();
        self.reaped = true;
    }

    /// Whether the instance printed nothing on stdout before it exited (after [`Instance::wait_exit`]).
    pub fn printed_nothing(&mut self) -> bool {
        self.proc.read_line(Duration::from_millis(100)).is_ok_and(|line| line.is_empty())
    }

    /// What the instance did first: became ready, exited, or neither before the deadline.
    pub fn start_outcome(&mut self, deadline: Instant) -> Start {
        let outcome = match self.ready {
            ReadyBy::Line => self.by_line(deadline),
            ReadyBy::Port => self.by_port(deadline),
        };
        if matches!(outcome, Start::Hung) {
            self.kill_and_reap();
        }
        outcome
    }

    fn by_line(&mut self, deadline: Instant) -> Start {
        let ready = spec::ready_line(HOST, self.port);
        match self.proc.read_line(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.trim_end() == ready => Start::Ready,
            Ok(stdout) => self.exited(stdout, deadline),
            Err(_) => Start::Hung,
        }
    }

    fn by_port(&mut self, deadline: Instant) -> Start {
        let pid = self.proc.pid();
        while Instant::now() < deadline {
            if sockets::holds_listener(pid, self.port) {
                return Start::Ready;
            }
            if let Some(status) = self.proc.exited() {
                self.reaped = true;
                return self.outcome_of(status, deadline);
            }
            // Polling the socket table for an implementation without a ready line; the deadline bounds it.
            std::thread::sleep(Duration::from_millis(1));
        }
        Start::Hung
    }

    /// After a first stdout line that was not the ready line: the exit, or a hang.
    fn exited(&mut self, stdout: String, deadline: Instant) -> Start {
        match self.wait_exit(deadline) {
            Some(status) => {
                let stderr = self.proc.stderr(deadline.saturating_duration_since(Instant::now()));
                Start::Exited { stdout, code: status.code(), stderr }
            }
            None => Start::Hung,
        }
    }

    fn outcome_of(&mut self, status: ExitStatus, deadline: Instant) -> Start {
        let left = deadline.saturating_duration_since(Instant::now());
        let stdout = self.proc.stdout_rest(left);
        Start::Exited { stdout, code: status.code(), stderr: self.proc.stderr(left) }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill_and_reap();
        if let Some(dirs) = &self.dirs {
            let _ = dirs.remove();
        }
    }
}

/// The signal `nix` sends for a [`KillSignal`].
fn nix_signal(signal: KillSignal) -> Signal {
    match signal {
        KillSignal::Kill => Signal::SIGKILL,
        KillSignal::Term => Signal::SIGTERM,
        KillSignal::Int => Signal::SIGINT,
        KillSignal::Abrt => Signal::SIGABRT,
    }
}
