//! `gateway verify`: crash-recovery verification runs of the lock on this machine.
//!
//! It drives real processes of an implementation (by default this very executable, `gateway run`;
//! any other one by `--exe` or a command template) on one loopback port through randomly drawn
//! cycles: a start killed before its ready line, a burst of contenders racing for the free port,
//! WebSocket clients connected to the winner, a burst of contenders against the holder, and an
//! ending (a signal while serving, a second signal in the middle of a graceful shutdown, or a kill
//! raced by a fresh burst). After every step it checks the invariants of `spec/invariants.md` and
//! counts violations by their IDs.
//!
//! The schedule of every cycle is drawn from one seeded RNG ([`schedule::CyclePlan::draw`]), so a seed
//! reproduces the schedule of a failing run (timing on a real machine varies, the schedule does
//! not). Nothing waits by sleeping: readiness is the ready line (or the port held), exits are
//! observed at once, every wait has a deadline. The only deliberate pause is the random *jitter*
//! before a mid-start kill, which chooses the moment of a fault and synchronises nothing.
//!
//! Processes, their directories, the spec's expectations and the WebSocket clients come from the
//! black-box harness (`gateway-harness`), as in the conformance runner and the tests. The I/O-free
//! parts (`schedule`, `tally`) are unit-tested; the driver (`subject`, `driver`) is exercised by
//! `tests/it/verify.rs` and `tests/prop_verify.rs`.

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use gateway_harness::proc::shell_quoted;
use gateway_harness::{net, reaper};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::{ReadyBy, VerifyArgs};

mod driver;
pub mod schedule;
mod subject;
pub mod tally;
#[cfg(test)]
mod tests;

use driver::{disable_core_dumps, Verifier, DEADLINE};
use schedule::Limits;
use subject::{Command, Subject};
use tally::Tally;

/// Cycles run when neither `--cycles` nor `--duration` is given.
pub const DEFAULT_CYCLES: u64 = 100;

/// The lowest port chosen automatically; the highest is just below the ephemeral range.
const AUTO_PORT_LOW: u16 = 10_240;

/// Why a verification could not run at all (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// `--port` was given and something listens there.
    #[error("port {port} is not free: {source}")]
    PortNotFree {
        /// The port.
        port: u16,
        /// Why the test bind failed.
        #[source]
        source: gateway_lock::GatewayLockError,
    },
    /// No free port was found below the ephemeral range.
    #[error("found no free port on 127.0.0.1 below the ephemeral range")]
    NoFreePort,
    /// Our own executable could not be found.
    #[error("cannot find the gateway executable: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// A process could not be spawned.
    #[error("cannot start {what}: {source}")]
    Spawn {
        /// The executable or command line.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The scratch directories of the instances could not be made.
    #[error("cannot create a scratch directory: {0}")]
    Scratch(#[source] std::io::Error),
}

/// Runs the verification; `Ok(true)` if no invariant was violated.
pub fn run(args: &VerifyArgs) -> Result<bool, VerifyError> {
    let command = match (&args.template, &args.exe) {
        (Some(template), _) => Command::Template(template.clone()),
        (None, Some(exe)) => Command::Exe(exe.clone()),
        (None, None) => Command::Exe(std::env::current_exe().map_err(VerifyError::CurrentExe)?),
    };
    let port = choose_port(args.port)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let cycles = match (args.cycles, args.duration) {
        (None, None) => Some(DEFAULT_CYCLES),
        (cycles, _) => cycles,
    };
    disable_core_dumps();
    // Whatever an instance leaves behind (a child of its own) comes back to us and is ended below.
    let _ = reaper::become_subreaper();
    let progress = progress_bar(cycles);
    let mut verifier = Verifier {
        subject: Subject::new(command, port, args.ready)?,
        port,
        rng: StdRng::seed_from_u64(seed),
        limits: Limits { max_burst: args.max_burst, max_clients: args.max_clients },
        tally: Tally::default(),
        cycle: 0,
        progress: progress.clone(),
    };
    let started = Instant::now();
    let ran = run_cycles(&mut verifier, cycles, args.duration, started);
    progress.finish_and_clear();
    drop(verifier.subject);
    reaper::kill_descendants(DEADLINE);
    ran?;
    let elapsed = started.elapsed();
    let tally = verifier.tally;
    if args.json {
        crate::report::print_line(tally.to_json(seed, port, elapsed));
    } else {
        crate::report::print_line(tally.to_text(seed, port, elapsed));
    }
    let passed = tally.violation_count() == 0;
    if !passed {
        crate::report::eprint_line(format_args!(
            "gateway verify: {} violation(s); reproduce the schedule with: {}",
            tally.violation_count(),
            replay_line(args, seed, tally.cycles, port)
        ));
    }
    Ok(passed)
}

/// Runs cycles until `cycles` or `duration` is reached.
fn run_cycles(
    verifier: &mut Verifier,
    cycles: Option<u64>,
    duration: Option<std::time::Duration>,
    started: Instant,
) -> Result<(), VerifyError> {
    loop {
        if cycles.is_some_and(|n| verifier.tally.cycles >= n) || duration.is_some_and(|d| started.elapsed() >= d) {
            return Ok(());
        }
        verifier.cycle()?;
        verifier.tally.cycles += 1;
        verifier.progress.inc(1);
        let t = &verifier.tally;
        verifier.progress.set_message(format!(
            "kills {} · contenders {} · violations {}",
            t.kills.values().sum::<u64>(),
            t.contenders,
            t.violation_count()
        ));
    }
}

/// The command line that replays the schedule of this run (VER-2), quoted for a POSIX shell.
fn replay_line(args: &VerifyArgs, seed: u64, cycles: u64, port: u16) -> String {
    let mut again = format!(
        "gateway verify --seed {seed} --cycles {cycles} --port {port} --max-burst {} --max-clients {}",
        args.max_burst, args.max_clients
    );
    if let Some(template) = &args.template {
        again.push_str(&format!(" --template {}", shell_quoted(template)));
    } else if let Some(exe) = &args.exe {
        again.push_str(&format!(" --exe {}", shell_quoted(&exe.to_string_lossy())));
    }
    if args.ready == ReadyBy::Port {
        again.push_str(" --ready port");
    }
    if args.json {
        again.push_str(" --json");
    }
    again
}

/// The port to verify on: `--port` if given (it must be free now), else a free port drawn at
/// random below the system's ephemeral range, where no outgoing connection can occupy it by chance.
fn choose_port(explicit: Option<u16>) -> Result<u16, VerifyError> {
    let is_free = |port: u16| gateway_lock::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).map(drop);
    if let Some(port) = explicit.filter(|p| *p != 0) {
        is_free(port).map_err(|source| VerifyError::PortNotFree { port, source })?;
        return Ok(port);
    }
    let high = net::ephemeral_range().map_or(32_768, |(low, _)| low);
    if high <= AUTO_PORT_LOW + 100 {
        // An unusual ephemeral range: let the kernel choose.
        let listener = gateway_lock::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(|_| VerifyError::NoFreePort)?;
        return listener.local_addr().map(|a| a.port()).map_err(|_| VerifyError::NoFreePort);
    }
    let mut rng = rand::rng();
    (0..100).map(|_| rng.random_range(AUTO_PORT_LOW..high)).find(|p| is_free(*p).is_ok()).ok_or(VerifyError::NoFreePort)
}

fn progress_bar(cycles: Option<u64>) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(cycles, target);
    let template = if cycles.is_some() {
        "{elapsed_precise} [{bar:30}] {pos}/{len} cycles · {msg}"
    } else {
        "{elapsed_precise} {spinner} {pos} cycles · {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
