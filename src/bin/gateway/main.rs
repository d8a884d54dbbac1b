//! The `gateway` binary: the command line in, the library's typed outcome out, printed by
//! [`report`] and mapped onto the exit code by [`exit::code`] (the only place that decides one).
//!
//! - [`cli`]: flags and environment variables (clap), turned into the library's settings;
//! - [`report`]: every line shown to people (refusals, `status`, `stop`, the ready line);
//! - [`exit`]: every exit code;
//! - [`verify`]: `gateway verify`, crash-recovery verification runs against real gateways;
//! - [`logging`]: diagnostics on stderr.

use std::process::ExitCode;

mod cli;
mod exit;
mod logging;
mod report;
#[cfg(target_os = "linux")]
mod verify;
#[cfg(not(target_os = "linux"))]
#[path = "verify_unsupported.rs"]
mod verify;

use cli::Command;
use exit::Outcome;

fn main() -> ExitCode {
    let outcome = match cli::parse_from(std::env::args_os()) {
        Ok(cli) => match logging::init() {
            Ok(()) => execute(cli.command),
            Err(err) => {
                report::eprint_line(format_args!("error: {err}"));
                Outcome::BadLogLevel
            }
        },
        Err(err) => {
            let _ = err.print();
            Outcome::Usage(err)
        }
    };
    if matches!(outcome, Outcome::Run(Ok(()))) {
        // Exit at once: the lock is released and nothing else may happen.
        std::process::exit(i32::from(exit::run::OK));
    }
    ExitCode::from(exit::code(&outcome))
}

/// Carries out one command and shows its outcome.
fn execute(command: Command) -> Outcome {
    match command {
        Command::Run(args) => {
            let result = gateway_lock::run(&args.settings(), report::run_event);
            if let Err(err) = &result {
                report::run_error(err, args.port);
            }
            Outcome::Run(result)
        }
        Command::Status(args) => {
            let found = gateway_lock::status(args.target.addr());
            report::status(&found, args.json);
            Outcome::Status(found)
        }
        Command::Stop(args) => {
            let addr = args.target.addr();
            let result = gateway_lock::stop(addr, args.timeout);
            report::stop(addr, &result);
            Outcome::Stop(result)
        }
        Command::Verify(args) => {
            let result = verify::run(&args);
            if let Err(err) = &result {
                report::eprint_line(format_args!("gateway verify: {err}"));
            }
            Outcome::Verify(result)
        }
    }
}
