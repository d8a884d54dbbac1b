//! `gateway verify`: crash-recovery verification runs of the lock on this machine.
//!
//! It drives real gateway processes (by default this very executable, `gateway run`) on one
//! loopback port through randomly drawn cycles: a start killed before its ready line, a burst of
//! contenders racing for the free port, WebSocket clients connected to the winner, a burst of
//! contenders against the holder, and an ending (a signal while serving, a second signal in the
//! middle of a graceful shutdown, or a kill raced by a fresh burst). After every step it checks
//! the invariants of `spec/invariants.md` and counts violations by their IDs.
//!
//! The schedule of every cycle is drawn from one seeded RNG ([`schedule::CyclePlan::draw`]), so a seed
//! reproduces the schedule of a failing run (timing on a real machine varies, the schedule does
//! not). Nothing waits by sleeping: readiness is the ready line, exits are observed with
//! `waitid`, every wait has a deadline. The only deliberate pause is the random *jitter* before a
//! mid-start kill, which chooses the moment of a fault and synchronises nothing.
//!
//! The I/O-free parts (`schedule`, `tally`) are unit-tested; the driver (`driver`) is
//! exercised by `tests/verify.rs`.

use std::io::IsTerminal;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::cli::VerifyArgs;

mod driver;
pub mod schedule;
pub mod tally;
#[cfg(test)]
mod tests;

use driver::{disable_core_dumps, StateDir, Verifier};
use schedule::Limits;
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
    #[error("cannot start {exe}: {source}")]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the verification; `Ok(true)` if no invariant was violated.
pub fn run(args: &VerifyArgs) -> Result<bool, VerifyError> {
    let exe = match &args.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe().map_err(VerifyError::CurrentExe)?,
    };
    let port = choose_port(args.port)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let cycles = match (args.cycles, args.duration) {
        (None, None) => Some(DEFAULT_CYCLES),
        (cycles, _) => cycles,
    };
    disable_core_dumps();
    let state_dir = StateDir::new();
    let progress = progress_bar(cycles);
    let mut verifier = Verifier {
        exe,
        port,
        state_dir: state_dir.path.clone(),
        rng: StdRng::seed_from_u64(seed),
        limits: Limits { max_burst: args.max_burst, max_clients: args.max_clients },
        tally: Tally::default(),
        cycle: 0,
        progress: progress.clone(),
    };
    let started = Instant::now();
    loop {
        if cycles.is_some_and(|n| verifier.tally.cycles >= n) || args.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        verifier.cycle()?;
        verifier.tally.cycles += 1;
        progress.inc(1);
        let t = &verifier.tally;
        progress.set_message(format!(
            "kills {} · contenders {} · violations {}",
            t.kills.values().sum::<u64>(),
            t.contenders,
            t.violation_count()
        ));
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed();
    let tally = verifier.tally;
    if args.json {
        crate::report::print_line(tally.to_json(seed, port, elapsed));
    } else {
        crate::report::print_line(tally.to_text(seed, port, elapsed));
    }
    let passed = tally.violation_count() == 0;
    if !passed {
        let mut again = format!(
            "gateway verify --seed {seed} --cycles {} --port {port} --max-burst {} --max-clients {}",
            tally.cycles, args.max_burst, args.max_clients
        );
        if let Some(exe) = &args.exe {
            let exe = exe.to_string_lossy();
            again.push_str(&format!(" --exe {}", shlex::try_quote(&exe).unwrap_or(exe.clone())));
        }
        if args.json {
            again.push_str(" --json");
        }
        eprintln!("gateway verify: {} violation(s); reproduce the schedule with: {again}", tally.violation_count());
    }
    Ok(passed)
}

/// The port to verify on: `--port` if given (it must be free now), else a free port drawn at
/// random below the system's ephemeral range, where no outgoing connection can occupy it by chance.
fn choose_port(explicit: Option<u16>) -> Result<u16, VerifyError> {
    let is_free = |port: u16| gateway_lock::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).map(drop);
    if let Some(port) = explicit.filter(|p| *p != 0) {
        is_free(port).map_err(|source| VerifyError::PortNotFree { port, source })?;
        return Ok(port);
    }
    let high = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|lo| lo.parse::<u16>().ok()))
        .unwrap_or(32_768);
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
