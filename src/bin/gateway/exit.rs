//! Every exit code of the `gateway` binary, decided in one place: [`code`] maps the outcome of a
//! command onto the code `spec/errors.md` and `spec/cli.md` give it; the constants name them. Each refusal has its own
//! code, so that scripts and service managers can tell them apart.

use gateway_lock::{GatewayLockError, Holder, HolderKind, RunError, StateDirError, StopDone, StopError, StopFailed};

use crate::verify::VerifyError;

/// Bad usage: unknown flag, bad value (clap's own code), for every subcommand.
pub const USAGE: u8 = 2;

/// Exit codes of `gateway run` (`spec/errors.md`).
pub mod run {
    /// Clean exit, including a completed graceful shutdown.
    pub const OK: u8 = 0;
    /// An unexpected runtime failure after the lock was taken.
    pub const RUNTIME: u8 = 1;
    /// The port is held by another listener (`EADDRINUSE`).
    pub const PORT_HELD: u8 = 3;
    /// Any other failure to bind the listener.
    pub const BIND_FAILED: u8 = 4;
    /// The port is held by a live gateway (ERR-1's message still first; `OPS-1`).
    pub const HELD_BY_GATEWAY: u8 = 5;
    /// The profile's state directory is locked by another gateway (`OPS-6`).
    pub const STATE_DIR_LOCKED: u8 = 6;
    /// Refusing to bind a non-loopback address without a token (`DOOR-2`).
    pub const UNAUTHENTICATED_BIND: u8 = 7;
}

/// Exit codes of `gateway status` (`spec/cli.md`).
pub mod status {
    /// A live gateway holds the port.
    pub const GATEWAY: u8 = 0;
    /// Nothing listens on the port (LSB's "not running").
    pub const FREE: u8 = 3;
    /// A process that is not a gateway holds the port.
    pub const FOREIGN: u8 = 4;
    /// Something holds the port but did not answer in time (stopped, hung, or not reading).
    pub const NOT_ANSWERING: u8 = 5;
}

/// Exit codes of `gateway stop` (`spec/cli.md`).
pub mod stop {
    /// The gateway stopped and the port is released.
    pub const STOPPED: u8 = 0;
    /// Nothing listens on the port: nothing to stop.
    pub const NOT_RUNNING: u8 = 3;
    /// The holder is not a gateway of this user (or cannot be verified): nothing was signalled.
    pub const REFUSED: u8 = 4;
    /// The gateway was signalled but still held the port at the timeout.
    pub const TIMED_OUT: u8 = 5;
}

/// Exit codes of `gateway verify` (`spec/cli.md`).
pub mod verify {
    /// Every cycle ran and no invariant was violated.
    pub const PASSED: u8 = 0;
    /// At least one invariant was violated (the summary counts them by ID).
    pub const VIOLATED: u8 = 1;
    /// The verification could not run: the port was not free at the start, or a process could not be spawned.
    pub const NOT_RUN: u8 = 3;
}

/// What a command ended with.
#[derive(Debug)]
pub enum Outcome {
    /// The command line was not understood (or help or the version was asked for).
    Usage(clap::Error),
    /// `GATEWAY_LOG` names no level (a usage error, `spec/cli.md`).
    BadLogLevel,
    /// `gateway run`.
    Run(Result<(), RunError>),
    /// `gateway status`: who holds the port.
    Status(Holder),
    /// `gateway stop`.
    Stop(Result<StopDone, StopFailed>),
    /// `gateway verify`: `Ok(true)` when no invariant was violated.
    Verify(Result<bool, VerifyError>),
}

/// The exit code of an outcome (`spec/errors.md`, `spec/cli.md`).
pub fn code(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Usage(err) => u8::try_from(err.exit_code()).unwrap_or(USAGE),
        Outcome::BadLogLevel => USAGE,
        Outcome::Run(Ok(())) => run::OK,
        Outcome::Run(Err(err)) => run_code(err),
        Outcome::Status(holder) => match holder.kind() {
            HolderKind::Gateway => status::GATEWAY,
            HolderKind::Free => status::FREE,
            HolderKind::Foreign => status::FOREIGN,
            HolderKind::NotAnswering => status::NOT_ANSWERING,
        },
        Outcome::Stop(Ok(_)) => stop::STOPPED,
        Outcome::Stop(Err(StopFailed { error, .. })) => match error {
            StopError::NotRunning { .. } => stop::NOT_RUNNING,
            StopError::TimedOut { .. } | StopError::Signal { .. } => stop::TIMED_OUT,
            StopError::NotAGateway { .. } | StopError::Unverified { .. } | StopError::OtherUser { .. } => stop::REFUSED,
        },
        Outcome::Verify(Ok(true)) => verify::PASSED,
        Outcome::Verify(Ok(false)) => verify::VIOLATED,
        Outcome::Verify(Err(_)) => verify::NOT_RUN,
    }
}

fn run_code(err: &RunError) -> u8 {
    match err {
        // The first line is ERR-1 exactly; then who holds the port (`OPS-1`).
        RunError::Refused { holder, .. } if holder.kind() == HolderKind::Gateway => run::HELD_BY_GATEWAY,
        RunError::Refused { .. } | RunError::Lock(GatewayLockError::AlreadyListening { .. }) => run::PORT_HELD,
        RunError::Lock(GatewayLockError::Bind { .. }) => run::BIND_FAILED,
        RunError::StateDir(StateDirError::Locked { .. }) => run::STATE_DIR_LOCKED,
        RunError::StateDir(_) | RunError::Runtime(_) | RunError::Token(_) => run::RUNTIME,
        RunError::Unauthenticated(_) => run::UNAUTHENTICATED_BIND,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_lock::{Answer, HealthInfo, Owner, WsUrl};
    use std::time::Duration;

    fn holder(answer: Answer) -> Holder {
        Holder { addr: "127.0.0.1:9".parse().unwrap(), owner: Owner::Unknown, answer, budget: Duration::from_millis(200) }
    }

    /// OPS-1, OPS-2: a refusal exits 5 when a live gateway holds the port, else 3; `status` has a
    /// code per kind of holder (`spec/cli.md`, `spec/errors.md`).
    #[test]
    fn ops1_ops2_codes_follow_the_holder() {
        let gateway = || Answer::Gateway(HealthInfo::default());
        let refused = |answer| {
            let url = WsUrl("127.0.0.1:9".parse().unwrap());
            Outcome::Run(Err(RunError::Refused { error: GatewayLockError::AlreadyListening { url }, holder: Box::new(holder(answer)) }))
        };
        assert_eq!(code(&refused(gateway())), run::HELD_BY_GATEWAY);
        assert_eq!(code(&refused(Answer::Other("answered 404".into()))), run::PORT_HELD);
        assert_eq!(code(&refused(Answer::NoAnswer)), run::PORT_HELD);
        let status = |answer| code(&Outcome::Status(holder(answer)));
        assert_eq!(
            [status(gateway()), status(Answer::Refused), status(Answer::Other(String::new())), status(Answer::NoAnswer)],
            [0, 3, 4, 5]
        );
    }
}
