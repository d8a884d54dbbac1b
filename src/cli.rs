//! The command line: flags, environment variables and exit codes (`spec/cli.md`, `spec/errors.md`).

use std::net::IpAddr;

use clap::{Args, Parser, Subcommand};

use crate::lock::{self, DEFAULT_PORT};

/// Exit codes of the `gateway` binary. Each refusal has its own, so that scripts and
/// service managers can tell them apart (`spec/errors.md`).
pub mod exit_code {
    /// Clean exit, including a completed graceful shutdown.
    pub const OK: u8 = 0;
    /// An unexpected runtime failure after the lock was taken.
    pub const RUNTIME: u8 = 1;
    /// Bad usage: unknown flag, bad value (clap's own code).
    pub const USAGE: u8 = 2;
    /// The port is held by another listener (`EADDRINUSE`).
    pub const PORT_HELD: u8 = 3;
    /// Any other failure to bind the listener.
    pub const BIND_FAILED: u8 = 4;
}

/// `gateway`: a WebSocket gateway whose single-instance lock is its listening port.
#[derive(Debug, Parser)]
#[command(name = "gateway", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Take the port as the lock and serve on it until SIGTERM, SIGINT or SIGHUP.
    Run(RunArgs),
    /// Verify the lock on this machine: start, race and kill real gateways at random, check every invariant.
    Verify(VerifyArgs),
}

/// Flags of `gateway run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Address to listen on: a literal IP (127.0.0.1, ::1, ...) or `localhost` (= 127.0.0.1).
    #[arg(long, env = "GATEWAY_HOST", default_value = "127.0.0.1", value_parser = parse_host_arg)]
    pub host: IpAddr,
    /// Port to listen on; 0 lets the OS choose (the ready line shows the real port).
    #[arg(long, short = 'p', env = "GATEWAY_PORT", default_value_t = DEFAULT_PORT, allow_negative_numbers = true)]
    pub port: u16,
}

/// Flags of `gateway verify` (`spec/cli.md`).
#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// Port to verify on (127.0.0.1); it must be free. Default: a free port below the ephemeral range.
    #[arg(long, short = 'p', value_parser = clap::value_parser!(u16).range(1..))]
    pub port: Option<u16>,
    /// Number of cycles to run (default 100 when --duration is not given either).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub cycles: Option<u64>,
    /// Run for this long, e.g. `30s`, `5m` (with --cycles: whichever ends first).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Seed of the random schedule (random if absent; a failed run prints it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Most contenders started at once.
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=16))]
    pub max_burst: usize,
    /// Most WebSocket clients kept connected to a holder.
    #[arg(long, default_value_t = 4, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=64))]
    pub max_clients: usize,
    /// The gateway executable to verify, called as `EXE run --host 127.0.0.1 --port P` (default: this one).
    #[arg(long, value_name = "EXE")]
    pub exe: Option<std::path::PathBuf>,
}

fn parse_host_arg(value: &str) -> Result<IpAddr, lock::HostError> {
    lock::parse_host(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["gateway", "run", "--port", "abc"][..],
            &["gateway", "run", "--port", "-1"],
            &["gateway", "run", "--port", "65536"],
            &["gateway", "run", "--host", ""],
            &["gateway", "run", "--host", "example.com"],
            &["gateway", "run", "--bogus"],
            &["gateway", "verify", "--cycles", "0"],
            &["gateway", "verify", "--cycles", "many"],
            &["gateway", "verify", "--duration", "soon"],
            &["gateway", "verify", "--port", "0"],
            &["gateway", "verify", "--max-burst", "0"],
            &["gateway", "verify", "--seed", "-1"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), i32::from(exit_code::USAGE), "{args:?}");
        }
    }
}
