//! The `gateway` binary: parses the command line and maps outcomes onto exit codes.

use std::process::ExitCode;

use clap::Parser;
use gateway_lock::cli::{exit_code, Cli, Command};
use gateway_lock::gateway::{self, RunError};
use gateway_lock::lock::GatewayLockError;

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
        Command::Verify(args) => ExitCode::from(gateway_lock::verify::main(&args)),
    }
}
