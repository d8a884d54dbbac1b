//! What the implementation claims beyond the lock, and how it is started: the runner's settings.

use std::path::PathBuf;
use std::time::Duration;

/// What the implementation claims beyond the lock (the default run, of our own binary, claims all).
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// `--token TOKEN`: it speaks `spec/protocol.md` and accepts this token (PROTO-*, DOOR-*).
    pub token: Option<String>,
    /// `--names-holder`: a refusal names the holder and exits 5 for a live instance (OPS-1).
    pub names_holder: bool,
    /// `--timer-args ARGS`: appended to the template for PROTO-6 and PROTO-9's ticks.
    pub timer_args: String,
}

impl Claims {
    /// The claims in words, for the heading and the JSON output.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.token.is_some() {
            out.push("the protocol (--token)".to_string());
        }
        if self.names_holder {
            out.push("naming the holder (--names-holder)".to_string());
        }
        out
    }
}

/// How readiness is seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyBy {
    /// The ready line `listening on ws://<host>:<port>` on stdout (CLI-1).
    Line,
    /// The port accepting connections (an implementation without a ready line; CLI-1 is n/a).
    Port,
    /// The port accepting, then `GET /readyz` answering 200: a peer that binds before it serves
    /// (OpenClaw's gateway); the bind is still timed at the port accepting (LOCK-3).
    Readyz,
}

impl Settings {
    /// The bound of the waits for an instance to be ready or to exit.
    pub fn start_deadline(&self) -> Duration {
        self.start_deadline.unwrap_or(self.deadline)
    }
}

/// Every setting of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The command template (`{port}`, optionally `{host}` and `{token}`).
    pub template: String,
    /// The claims.
    pub claims: Claims,
    /// The bound of every wait (`--deadline`).
    pub deadline: Duration,
    /// The bound of the waits for an instance to be ready or to exit (`--start-deadline`;
    /// `None`: `deadline`), for a peer that takes long to start or to refuse.
    pub start_deadline: Option<Duration>,
    /// How readiness is seen (`--ready line|port`).
    pub ready: ReadyBy,
    /// Contenders in LOCK-6's burst (`--burst`).
    pub burst: usize,
    /// Rounds of the racing rows (`--repeat`).
    pub repeat: usize,
    /// The seed of the racing rows' choices (`--seed`).
    pub seed: u64,
    /// Only these rows (`--only`); empty: all.
    pub only: Vec<String>,
    /// Print every command run and every instance's output (`--verbose`).
    pub verbose: bool,
    /// Print JSON instead of the table (`--json`).
    pub json: bool,
    /// Also write JUnit XML here (`--junit`).
    pub junit: Option<PathBuf>,
    /// Known departures (`--expect`).
    pub expect: Option<PathBuf>,
}
