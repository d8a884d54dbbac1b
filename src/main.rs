//! The `gateway` binary: parses the command line and maps outcomes onto exit codes.

use std::process::ExitCode;

use gateway_lock::cli::{self, exit_code, Command};
use gateway_lock::gateway::{self, RunError};
use gateway_lock::lock::GatewayLockError;
use gateway_lock::profile::StateDirError;

fn main() -> ExitCode {
    let cli = match cli::parse_from(std::env::args_os()) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(err.exit_code() as u8);
        }
    };
    if let Err(err) = gateway_lock::logging::init() {
        eprintln!("error: {err}");
        return ExitCode::from(exit_code::USAGE);
    }
    match cli.command {
        Command::Run(args) => match gateway::run(&args) {
            Ok(()) => {
                // Exit at once: the lock is released and nothing else may happen.
                std::process::exit(i32::from(exit_code::OK));
            }
            Err(err) => {
                eprintln!("{err}");
                ExitCode::from(match err {
                    // The first line is ERR-1 exactly; then who holds the port (issue 4, OPS-1).
                    RunError::Lock(GatewayLockError::AlreadyListening { url }) => gateway_lock::probe::explain_refusal(url.0, args.port),
                    RunError::Lock(GatewayLockError::Bind { .. }) => exit_code::BIND_FAILED,
                    RunError::StateDir(StateDirError::Locked { .. }) => exit_code::STATE_DIR_LOCKED,
                    RunError::StateDir(_) | RunError::Runtime(_) | RunError::Token(_) => exit_code::RUNTIME,
                    RunError::Unauthenticated(_) => exit_code::UNAUTHENTICATED_BIND,
                })
            }
        },
        Command::Status(args) => ExitCode::from(gateway_lock::status::status(args.target.addr(), args.json)),
        Command::Stop(args) => ExitCode::from(gateway_lock::stop::stop(args.target.addr(), args.timeout)),
        Command::Verify(args) => ExitCode::from(gateway_lock::verify::main(&args)),
    }
}
