//! The `gateway` binary: parses the command line and maps outcomes onto exit codes.

use std::process::ExitCode;

#[cfg(not(gateway_loom))]
use clap::Parser;
#[cfg(not(gateway_loom))]
use gateway_lock::cli::{exit_code, Cli, Command};
#[cfg(not(gateway_loom))]
use gateway_lock::gateway::{self, RunError};
#[cfg(not(gateway_loom))]
use gateway_lock::lock::GatewayLockError;

/// Built with `--cfg gateway_loom` (the loom models only): the gateway itself is not built.
#[cfg(gateway_loom)]
fn main() -> ExitCode {
    eprintln!("gateway: built with --cfg gateway_loom for the loom models; not a usable binary");
    ExitCode::from(1)
}

#[cfg(not(gateway_loom))]
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(err.exit_code() as u8);
        }
    };
    gateway_lock::logging::init();
    match cli.command {
        Command::Run(args) => match gateway::run(&args) {
            Ok(()) => {
                // Exit at once: the lock is released and nothing else may happen.
                std::process::exit(i32::from(exit_code::OK));
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::from(match err {
                    RunError::Lock(GatewayLockError::AlreadyListening { .. }) => exit_code::PORT_HELD,
                    RunError::Lock(GatewayLockError::Bind { .. }) => exit_code::BIND_FAILED,
                    RunError::Runtime(_) => exit_code::RUNTIME,
                })
            }
        },
    }
}
