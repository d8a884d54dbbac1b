//! `gateway verify`: crash-recovery verification runs of the lock on this machine.
//!
//! It drives real gateway processes (by default this very executable, `gateway run`) on one
//! loopback port through randomly drawn cycles: a start killed before its ready line, a burst of
//! contenders racing for the free port, WebSocket clients connected to the winner, a burst of
//! contenders against the holder, and an ending (a signal while serving, a second signal in the
//! middle of a graceful shutdown, or a kill raced by a fresh burst). After every step it checks
//! the invariants of `spec/invariants.md` and counts violations by their IDs.
//!
//! The schedule of every cycle is drawn from one seeded RNG ([`CyclePlan::draw`]), so a seed
//! reproduces the schedule of a failing run (timing on a real machine varies, the schedule does
//! not). Nothing waits by sleeping: readiness is the ready line, exits are observed with
//! `waitid`, every wait has a deadline. The only deliberate pause is the random *jitter* before a
//! mid-start kill, which chooses the moment of a fault and synchronises nothing.
//!
//! The I/O-free parts ([`CyclePlan`], [`check_refusal`], [`Tally`]) are unit-tested; the driver is
//! exercised by `tests/verify.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio_tungstenite::tungstenite::{self, Message};

use crate::cli::VerifyArgs;
use crate::gateway::ready_line;
use crate::lock;

/// Exit codes of `gateway verify` (`spec/cli.md`).
pub mod exit_code {
    /// Every cycle ran and no invariant was violated.
    pub const PASSED: u8 = 0;
    /// At least one invariant was violated (the summary counts them by ID).
    pub const VIOLATED: u8 = 1;
    /// Bad usage (clap's own code).
    pub const USAGE: u8 = 2;
    /// The verification could not run: the port was not free at the start, or a process could not be spawned.
    pub const NOT_RUN: u8 = 3;
}

/// How long anything that should happen "at once" may take before it counts as a hang.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Cycles run when neither `--cycles` nor `--duration` is given.
pub const DEFAULT_CYCLES: u64 = 100;

/// Violation details printed (and kept for `--json`); further violations are only counted.
const MAX_REPORTED: usize = 20;

/// The lowest port chosen automatically; the highest is just below the ephemeral range.
const AUTO_PORT_LOW: u16 = 10_240;

/// The invariants `verify` checks, by their IDs in `spec/invariants.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// At most one holder: no contender starts while another holds the port.
    Lock1,
    /// A refused start prints nothing on stdout.
    Lock3,
    /// Among contenders on a free port exactly one wins (no start refused while the port was free).
    Lock6,
    /// After its holder is gone, the port is free at once.
    Rel1,
    /// The same, with WebSocket clients connected at the kill.
    Rel2,
    /// A graceful signal closes every client with 1012 and exits 0.
    Shut1,
    /// A graceful shutdown ends within the deadline.
    Shut2,
    /// A second signal during a graceful shutdown changes nothing.
    Shut3,
    /// Every refusal carries the exact message (first stderr line) and exits 3 (or 5).
    Err1,
    /// A WebSocket client can connect to the holder.
    Srv2,
}

impl Invariant {
    /// Every invariant checked, in report order.
    pub const ALL: [Invariant; 10] = [
        Invariant::Lock1,
        Invariant::Lock3,
        Invariant::Lock6,
        Invariant::Rel1,
        Invariant::Rel2,
        Invariant::Shut1,
        Invariant::Shut2,
        Invariant::Shut3,
        Invariant::Err1,
        Invariant::Srv2,
    ];

    /// The ID as written in `spec/invariants.md`.
    pub fn id(self) -> &'static str {
        match self {
            Invariant::Lock1 => "LOCK-1",
            Invariant::Lock3 => "LOCK-3",
            Invariant::Lock6 => "LOCK-6",
            Invariant::Rel1 => "REL-1",
            Invariant::Rel2 => "REL-2",
            Invariant::Shut1 => "SHUT-1",
            Invariant::Shut2 => "SHUT-2",
            Invariant::Shut3 => "SHUT-3",
            Invariant::Err1 => "ERR-1",
            Invariant::Srv2 => "SRV-2",
        }
    }
}

/// The signals a holder is killed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KillSignal {
    /// `SIGKILL`: no chance to clean up.
    Kill,
    /// `SIGTERM`: graceful shutdown (once the handlers are in place).
    Term,
    /// `SIGINT`: graceful shutdown (once the handlers are in place).
    Int,
    /// `SIGABRT`: abort, as a crash would.
    Abrt,
}

impl KillSignal {
    /// Every signal, in report order.
    pub const ALL: [KillSignal; 4] = [KillSignal::Kill, KillSignal::Term, KillSignal::Int, KillSignal::Abrt];

    /// The signal's name (`SIGKILL`, ...).
    pub fn name(self) -> &'static str {
        match self {
            KillSignal::Kill => "SIGKILL",
            KillSignal::Term => "SIGTERM",
            KillSignal::Int => "SIGINT",
            KillSignal::Abrt => "SIGABRT",
        }
    }

    /// Whether a ready gateway shuts down gracefully on it.
    pub fn graceful(self) -> bool {
        matches!(self, KillSignal::Term | KillSignal::Int)
    }

    fn nix(self) -> Signal {
        match self {
            KillSignal::Kill => Signal::SIGKILL,
            KillSignal::Term => Signal::SIGTERM,
            KillSignal::Int => Signal::SIGINT,
            KillSignal::Abrt => Signal::SIGABRT,
        }
    }

    fn draw(rng: &mut impl Rng) -> Self {
        Self::ALL[rng.random_range(0..Self::ALL.len())]
    }

    fn draw_graceful(rng: &mut impl Rng) -> Self {
        if rng.random_bool(0.5) {
            KillSignal::Term
        } else {
            KillSignal::Int
        }
    }
}

/// Bounds of a cycle's random choices (`--max-burst`, `--max-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most contenders started at once.
    pub max_burst: usize,
    /// Most WebSocket clients connected to a holder.
    pub max_clients: usize,
}

/// A start that is killed before (or around) its ready line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MidStart {
    /// The signal.
    pub signal: KillSignal,
    /// Pause between spawn and signal, in microseconds (0: at once). Chooses the moment of the fault.
    pub jitter_us: u64,
}

/// How a cycle's holder ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// One signal while serving.
    Serving(KillSignal),
    /// A graceful signal, then a second signal while the holder is still draining.
    MidShutdown {
        /// SIGTERM or SIGINT.
        first: KillSignal,
        /// Any signal.
        second: KillSignal,
    },
    /// A signal raced by a burst of fresh contenders.
    Race {
        /// The signal.
        signal: KillSignal,
        /// Contenders started at the same moment.
        contenders: usize,
        /// Whether the signal is sent before the contenders are spawned.
        signal_first: bool,
    },
}

/// The schedule of one cycle, drawn from the seeded RNG; free of I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CyclePlan {
    /// A lone start killed mid-start, before the burst.
    pub mid_start: Option<MidStart>,
    /// Contenders racing for the free port (exactly one must win).
    pub burst: usize,
    /// WebSocket clients connected to the winner.
    pub clients: usize,
    /// Contenders started against the holder (all must be refused).
    pub held_burst: usize,
    /// How the holder ends.
    pub ending: Ending,
}

impl CyclePlan {
    /// Draws a cycle. The same RNG state gives the same plan.
    pub fn draw(rng: &mut impl Rng, limits: &Limits) -> Self {
        let max_burst = limits.max_burst.max(1);
        let mid_start = rng.random_bool(0.3).then(|| MidStart {
            signal: KillSignal::draw(rng),
            jitter_us: if rng.random_bool(0.5) { 0 } else { rng.random_range(0..3_000) },
        });
        let burst = rng.random_range(1..=max_burst);
        let clients = rng.random_range(0..=limits.max_clients);
        let held_burst = rng.random_range(0..=max_burst);
        let ending = match rng.random_range(0..3) {
            0 => Ending::Serving(KillSignal::draw(rng)),
            1 => Ending::MidShutdown { first: KillSignal::draw_graceful(rng), second: KillSignal::draw(rng) },
            _ => Ending::Race {
                signal: KillSignal::draw(rng),
                contenders: rng.random_range(1..=max_burst),
                signal_first: rng.random_bool(0.5),
            },
        };
        CyclePlan { mid_start, burst, clients, held_burst, ending }
    }
}

/// The exact first stderr line of a refusal on `port` (ERR-1).
pub fn refusal_line(port: u16) -> String {
    format!("GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:{port}")
}

/// Checks one refused start: exit code 3 (or 5, "held by a healthy gateway"), the exact first
/// stderr line, nothing on stdout. Returns the violations found.
pub fn check_refusal(port: u16, code: Option<i32>, stdout: &str, stderr: &str) -> Vec<(Invariant, String)> {
    let mut found = Vec::new();
    let first = stderr.lines().next().unwrap_or("");
    if first != refusal_line(port) {
        found.push((Invariant::Err1, format!("refusal's first stderr line was {first:?}")));
    }
    if !matches!(code, Some(3) | Some(5)) {
        found.push((Invariant::Err1, format!("refusal exited with {code:?}, not 3 or 5 (stderr {first:?})")));
    }
    if !stdout.is_empty() {
        found.push((Invariant::Lock3, format!("refused start printed {stdout:?} on stdout")));
    }
    found
}

/// One violation, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The cycle it happened in (from 1).
    pub cycle: u64,
    /// The invariant.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

/// The counts of a run; free of I/O.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Cycles completed.
    pub cycles: u64,
    /// Processes started.
    pub starts: u64,
    /// Starts that became the holder.
    pub holders: u64,
    /// Contenders started (in bursts, including races).
    pub contenders: u64,
    /// Starts refused with the lock error.
    pub refusals: u64,
    /// WebSocket clients connected.
    pub clients: u64,
    /// Signals delivered, by signal.
    pub kills: BTreeMap<KillSignal, u64>,
    /// Signals delivered in a mid-start fault (at once or after a jitter of up to 3 ms).
    pub kills_mid_start: u64,
    /// Of those, the ones that killed the start before its ready line.
    pub kills_before_ready: u64,
    /// Signals delivered during a graceful shutdown.
    pub kills_mid_shutdown: u64,
    /// Violations by invariant.
    pub violations: BTreeMap<Invariant, u64>,
    /// The first violations, in order.
    pub reported: Vec<Violation>,
}

impl Tally {
    /// Records a violation; returns it if it is among the first reported ones.
    pub fn violate(&mut self, cycle: u64, invariant: Invariant, detail: String) -> Option<&Violation> {
        *self.violations.entry(invariant).or_default() += 1;
        if self.reported.len() < MAX_REPORTED {
            self.reported.push(Violation { cycle, invariant, detail });
            self.reported.last()
        } else {
            None
        }
    }

    /// Records a delivered signal.
    pub fn killed(&mut self, signal: KillSignal) {
        *self.kills.entry(signal).or_default() += 1;
    }

    /// Total violations.
    pub fn violation_count(&self) -> u64 {
        self.violations.values().sum()
    }

    /// The machine-readable summary (`--json`).
    pub fn to_json(&self, seed: u64, port: u16, elapsed: Duration) -> serde_json::Value {
        let kills: serde_json::Map<_, _> =
            KillSignal::ALL.iter().map(|s| (s.name().to_string(), self.kills.get(s).copied().unwrap_or(0).into())).collect();
        let violations: serde_json::Map<_, _> =
            Invariant::ALL.iter().map(|i| (i.id().to_string(), self.violations.get(i).copied().unwrap_or(0).into())).collect();
        let reported: Vec<_> =
            self.reported.iter().map(|v| serde_json::json!({"cycle": v.cycle, "id": v.invariant.id(), "detail": v.detail})).collect();
        serde_json::json!({
            "ok": self.violation_count() == 0,
            "seed": seed,
            "port": port,
            "cycles": self.cycles,
            "elapsedMs": elapsed.as_millis() as u64,
            "starts": self.starts,
            "holders": self.holders,
            "contenders": self.contenders,
            "refusals": self.refusals,
            "clients": self.clients,
            "kills": kills,
            "killsMidStart": self.kills_mid_start,
            "killsBeforeReady": self.kills_before_ready,
            "killsMidShutdown": self.kills_mid_shutdown,
            "violations": violations,
            "violationCount": self.violation_count(),
            "firstViolations": reported,
        })
    }

    /// The human-readable summary.
    pub fn to_text(&self, seed: u64, port: u16, elapsed: Duration) -> String {
        let kills: Vec<String> =
            KillSignal::ALL.iter().map(|s| format!("{} {}", s.name(), self.kills.get(s).copied().unwrap_or(0))).collect();
        let violations: Vec<String> =
            Invariant::ALL.iter().map(|i| format!("{} {}", i.id(), self.violations.get(i).copied().unwrap_or(0))).collect();
        format!(
            "gateway verify: {} cycles on ws://127.0.0.1:{port} in {:.1} s (seed {seed})\n\
             starts      {} ({} holders, {} refused)\n\
             contenders  {}\n\
             clients     {}\n\
             kills       {} (mid-start {} of which {} before the ready line, mid-shutdown {})\n\
             violations  {} ({})\n\
             result      {}",
            self.cycles,
            elapsed.as_secs_f64(),
            self.starts,
            self.holders,
            self.refusals,
            self.contenders,
            self.clients,
            kills.join(", "),
            self.kills_mid_start,
            self.kills_before_ready,
            self.kills_mid_shutdown,
            self.violation_count(),
            violations.join(", "),
            if self.violation_count() == 0 { "PASSED" } else { "FAILED" },
        )
    }
}

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
        source: lock::GatewayLockError,
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

/// Runs `gateway verify` and returns its exit code.
pub fn main(args: &VerifyArgs) -> u8 {
    match run(args) {
        Ok(passed) if passed => exit_code::PASSED,
        Ok(_) => exit_code::VIOLATED,
        Err(err) => {
            eprintln!("gateway verify: {err}");
            exit_code::NOT_RUN
        }
    }
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
        crate::cli::print_line(tally.to_json(seed, port, elapsed));
    } else {
        crate::cli::print_line(tally.to_text(seed, port, elapsed));
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
    let is_free = |port: u16| lock::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).map(drop);
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
        let listener = lock::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).map_err(|_| VerifyError::NoFreePort)?;
        return listener.local_addr().map(|a| a.port()).map_err(|_| VerifyError::NoFreePort);
    }
    let mut rng = rand::rng();
    (0..100).map(|_| rng.random_range(AUTO_PORT_LOW..high)).find(|p| is_free(*p).is_ok()).ok_or(VerifyError::NoFreePort)
}

/// SIGABRT must not write core files (the kernel's `core` pattern writes into the working
/// directory): children inherit this limit.
fn disable_core_dumps() {
    use nix::sys::resource::{setrlimit, Resource};
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
}

/// A private state directory for the gateways started (`XDG_STATE_HOME`), so that a gateway
/// running on this host under the same user is never disturbed; removed at the end.
struct StateDir {
    path: PathBuf,
}

impl StateDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("gateway-verify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&path);
        StateDir { path }
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
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

/// What a started process did first.
#[derive(Debug)]
enum Start {
    /// It printed this ready line.
    Ready,
    /// It exited without a ready line (stdout, exit code, stderr).
    Exited { stdout: String, code: Option<i32>, stderr: String },
    /// Neither within the deadline (it has been killed).
    Hung,
}

enum Event {
    FirstLine(String),
    Exited(String),
}

/// A started gateway process. A watcher thread reads its first stdout line, drains its stderr
/// and observes its exit with `waitid(WNOWAIT)`, so the process stays unreaped (its pid cannot
/// be reused) until [`Proc::wait_exit`] reaps it: signalling it is always safe.
struct Proc {
    child: Child,
    events: Receiver<Event>,
    first_line: Option<String>,
    exited: Option<(Option<i32>, Option<i32>, String)>,
}

impl Proc {
    fn spawn(exe: &Path, port: u16, state_dir: &Path) -> Result<Proc, VerifyError> {
        let mut child = Command::new(exe)
            .args(["run", "--host", "127.0.0.1", "--port", &port.to_string()])
            .env("GATEWAY_LOG", "warn")
            // Nothing left behind (DOOR-6): the gateway's whole world is the private directory.
            .envs(["XDG_STATE_HOME", "HOME", "TMPDIR"].map(|var| (var, state_dir)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| VerifyError::Spawn { exe: exe.to_path_buf(), source })?;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let pid = Pid::from_raw(child.id() as i32);
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(Event::FirstLine(line));
            let mut err = String::new();
            let _ = stderr.read_to_string(&mut err);
            let _ = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
            let _ = tx.send(Event::Exited(err));
        });
        Ok(Proc { child, events, first_line: None, exited: None })
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Delivers `signal` unless the process has been reaped; true if delivered.
    fn signal(&self, signal: KillSignal) -> bool {
        self.exited.is_none() && kill(self.pid(), signal.nix()).is_ok()
    }

    fn take_event(&mut self, deadline: Instant) -> bool {
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(wait) {
            Ok(Event::FirstLine(line)) => self.first_line = Some(line),
            Ok(Event::Exited(stderr)) => {
                let status = self.child.wait().ok();
                self.exited = Some((status.and_then(|s| s.code()), status.and_then(|s| s.signal()), stderr));
            }
            Err(_) => return false,
        }
        true
    }

    /// The first stdout line ("" at EOF), or None at the deadline.
    fn first_line(&mut self, deadline: Instant) -> Option<&str> {
        while self.first_line.is_none() {
            if !self.take_event(deadline) {
                return None;
            }
        }
        self.first_line.as_deref()
    }

    /// Waits for the exit and reaps: (exit code, signal, stderr), or None at the deadline.
    fn wait_exit(&mut self, deadline: Instant) -> Option<&(Option<i32>, Option<i32>, String)> {
        while self.exited.is_none() {
            if !self.take_event(deadline) {
                return None;
            }
        }
        self.exited.as_ref()
    }

    /// Kills (SIGKILL) and reaps.
    fn kill_and_reap(&mut self) {
        if self.exited.is_none() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            if self.wait_exit(Instant::now() + DEADLINE).is_none() {
                let _ = self.child.wait();
            }
        }
    }

    /// What the process did first: ready line, exit, or nothing before the deadline.
    fn start_outcome(&mut self, port: u16, deadline: Instant) -> Start {
        let ready = ready_line(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
        match self.first_line(deadline).map(str::to_string) {
            Some(line) if line.trim_end() == ready => Start::Ready,
            Some(stdout) => match self.wait_exit(deadline) {
                Some((code, _, stderr)) => Start::Exited { stdout, code: *code, stderr: stderr.clone() },
                None => {
                    self.kill_and_reap();
                    Start::Hung
                }
            },
            None => {
                self.kill_and_reap();
                Start::Hung
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

type Ws = tungstenite::WebSocket<TcpStream>;

fn connect_client(addr: SocketAddr) -> Result<Ws, String> {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_read_timeout(Some(DEADLINE));
    let _ = stream.set_write_timeout(Some(DEADLINE));
    let _ = stream.set_nodelay(true);
    let (ws, _) = tungstenite::client(format!("ws://{addr}/"), stream).map_err(|e| format!("handshake: {e}"))?;
    Ok(ws)
}

/// Reads until the close frame (skipping data frames); the close reply is queued, not yet flushed.
fn read_close(ws: &mut Ws) -> Result<Option<u16>, String> {
    loop {
        match ws.read() {
            Ok(Message::Close(frame)) => return Ok(frame.map(|f| u16::from(f.code))),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

struct Verifier {
    exe: PathBuf,
    port: u16,
    state_dir: PathBuf,
    rng: StdRng,
    limits: Limits,
    tally: Tally,
    cycle: u64,
    progress: ProgressBar,
}

impl Verifier {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn violate(&mut self, invariant: Invariant, detail: String) {
        let cycle = self.cycle;
        if let Some(v) = self.tally.violate(cycle, invariant, detail) {
            let line = format!("violation {} in cycle {}: {}", v.invariant.id(), v.cycle, v.detail);
            self.progress.suspend(|| eprintln!("{line}"));
        }
    }

    fn spawn(&mut self) -> Result<Proc, VerifyError> {
        self.tally.starts += 1;
        Proc::spawn(&self.exe, self.port, &self.state_dir)
    }

    fn signal(&mut self, proc: &Proc, signal: KillSignal) {
        if proc.signal(signal) {
            self.tally.killed(signal);
        }
    }

    /// The port must be free now that nothing holds it: a bind of our own succeeds.
    fn check_free(&mut self, invariant: Invariant, after: &str) {
        if let Err(err) = lock::bind(self.addr()) {
            self.violate(invariant, format!("port still held after {after}: {err}"));
        }
    }

    fn check_refused(&mut self, stdout: &str, code: Option<i32>, stderr: &str) {
        self.tally.refusals += 1;
        for (invariant, detail) in check_refusal(self.port, code, stdout, stderr) {
            self.violate(invariant, detail);
        }
    }

    /// Spawns `n` contenders at once.
    fn burst(&mut self, n: usize) -> Result<Vec<Proc>, VerifyError> {
        self.tally.contenders += n as u64;
        (0..n).map(|_| self.spawn()).collect()
    }

    /// Settles a burst: returns the winners (ready processes); checks every refusal.
    fn settle(&mut self, procs: Vec<Proc>) -> Vec<Proc> {
        let deadline = Instant::now() + DEADLINE;
        let mut winners = Vec::new();
        for mut proc in procs {
            match proc.start_outcome(self.port, deadline) {
                Start::Ready => winners.push(proc),
                Start::Exited { stdout, code, stderr } => self.check_refused(&stdout, code, &stderr),
                Start::Hung => self.violate(Invariant::Err1, "a contender neither became ready nor was refused within the deadline".into()),
            }
        }
        self.tally.holders += winners.len() as u64;
        winners
    }

    /// Kills and reaps extra holders (each one a LOCK-1 violation already counted), keeps one.
    fn single_holder(&mut self, mut winners: Vec<Proc>, what: &str) -> Option<Proc> {
        if winners.len() > 1 {
            self.violate(Invariant::Lock1, format!("{} holders at once {what}", winners.len()));
        }
        let first = if winners.is_empty() { None } else { Some(winners.remove(0)) };
        for mut extra in winners {
            extra.kill_and_reap();
        }
        first
    }

    /// A start killed around its ready line; afterwards the port must be free.
    fn mid_start(&mut self, fault: MidStart) -> Result<(), VerifyError> {
        let proc = self.spawn()?;
        if fault.jitter_us > 0 {
            // Fault injection: chooses the moment of the kill; it synchronises nothing.
            std::thread::sleep(Duration::from_micros(fault.jitter_us));
        }
        let mut proc = proc;
        if proc.signal(fault.signal) {
            self.tally.killed(fault.signal);
            self.tally.kills_mid_start += 1;
        }
        let deadline = Instant::now() + DEADLINE;
        // A graceful signal that arrives after the handlers are in place is a clean shutdown.
        if proc.wait_exit(deadline).is_none() {
            self.violate(Invariant::Rel1, format!("a start killed with {} mid-start did not exit", fault.signal.name()));
            proc.kill_and_reap();
        } else if proc.first_line.as_deref() == Some("") {
            self.tally.kills_before_ready += 1;
        }
        self.check_free(Invariant::Rel1, &format!("a start killed with {} mid-start", fault.signal.name()));
        Ok(())
    }

    /// One cycle of the plan; the port is free before and after.
    fn cycle(&mut self) -> Result<(), VerifyError> {
        self.cycle += 1;
        let plan = CyclePlan::draw(&mut self.rng, &self.limits);
        if let Some(fault) = plan.mid_start {
            self.mid_start(fault)?;
        }

        // A burst on the free port: exactly one winner.
        let procs = self.burst(plan.burst)?;
        let winners = self.settle(procs);
        if winners.is_empty() {
            self.violate(Invariant::Lock6, format!("all {} contenders were refused while the port was free", plan.burst));
            self.check_free(Invariant::Rel1, "a burst without winner");
            return Ok(());
        }
        let Some(mut holder) = self.single_holder(winners, "from one burst") else { return Ok(()) };

        // Clients on the holder.
        let mut clients = Vec::new();
        for _ in 0..plan.clients {
            match connect_client(self.addr()) {
                Ok(ws) => clients.push(ws),
                Err(err) => self.violate(Invariant::Srv2, format!("a WebSocket client could not connect to the holder: {err}")),
            }
        }
        self.tally.clients += clients.len() as u64;

        // Contenders against the holder: all refused.
        if plan.held_burst > 0 {
            let procs = self.burst(plan.held_burst)?;
            let intruders = self.settle(procs);
            if !intruders.is_empty() {
                self.violate(Invariant::Lock1, format!("{} contender(s) started while the port was held", intruders.len()));
            }
        }

        let had_clients = !clients.is_empty();
        let rel = if had_clients { Invariant::Rel2 } else { Invariant::Rel1 };
        match plan.ending {
            Ending::Serving(signal) => {
                self.signal(&holder, signal);
                self.finish_holder(&mut holder, &mut clients, signal.graceful(), Invariant::Shut1, signal.name());
                drop(clients);
                self.check_free(rel, &format!("its holder was killed with {}", signal.name()));
            }
            Ending::MidShutdown { first, second } => {
                self.signal(&holder, first);
                // With a client whose close frame we have read but not answered, the holder is
                // certainly still draining when the second signal arrives.
                if let Some(ws) = clients.first_mut() {
                    match read_close(ws) {
                        Ok(Some(1012)) => {}
                        other => self.violate(Invariant::Shut1, format!("client got {other:?} on {}, not close 1012", first.name())),
                    }
                }
                if holder.signal(second) {
                    self.tally.killed(second);
                    if !clients.is_empty() {
                        self.tally.kills_mid_shutdown += 1;
                    }
                }
                let what = format!("{} then {}", first.name(), second.name());
                self.finish_mid_shutdown(&mut holder, &mut clients, second.graceful(), &what);
                drop(clients);
                self.check_free(rel, &format!("its holder got {what}"));
            }
            Ending::Race { signal, contenders, signal_first } => {
                let procs = if signal_first {
                    self.signal(&holder, signal);
                    self.burst(contenders)?
                } else {
                    let procs = self.burst(contenders)?;
                    self.signal(&holder, signal);
                    procs
                };
                self.finish_holder(&mut holder, &mut clients, signal.graceful(), Invariant::Shut1, signal.name());
                drop(clients);
                let winners = self.settle(procs);
                match self.single_holder(winners, "after a kill raced by contenders") {
                    Some(mut successor) => {
                        self.signal(&successor, KillSignal::Kill);
                        successor.kill_and_reap();
                        self.check_free(Invariant::Rel1, "a successor was killed with SIGKILL");
                    }
                    None => self.check_free(rel, &format!("its holder was killed with {} (raced)", signal.name())),
                }
            }
        }
        Ok(())
    }

    /// After a signal to a ready holder: on a graceful one every client must get close 1012 and
    /// the holder must exit 0 (`invariant`); on any other it must exit. Reaps the holder.
    fn finish_holder(&mut self, holder: &mut Proc, clients: &mut [Ws], graceful: bool, invariant: Invariant, what: &str) {
        if graceful {
            for ws in clients.iter_mut() {
                match read_close(ws) {
                    Ok(Some(1012)) => {
                        let _ = ws.flush();
                    }
                    other => self.violate(invariant, format!("client got {other:?} on {what}, not close 1012")),
                }
            }
        }
        self.reap(holder, graceful, invariant, what);
    }

    /// After the second signal of a graceful shutdown: answers the first client's close, reads
    /// the others' close frames if the shutdown is still graceful (SHUT-3), and reaps.
    fn finish_mid_shutdown(&mut self, holder: &mut Proc, clients: &mut [Ws], graceful: bool, what: &str) {
        if let Some(ws) = clients.first_mut() {
            let _ = ws.flush();
        }
        if graceful && clients.len() > 1 {
            self.finish_holder(holder, &mut clients[1..], true, Invariant::Shut3, what);
        } else {
            self.reap(holder, graceful, Invariant::Shut3, what);
        }
    }

    fn reap(&mut self, holder: &mut Proc, graceful: bool, invariant: Invariant, what: &str) {
        let deadline = Instant::now() + DEADLINE;
        match holder.wait_exit(deadline) {
            Some((code, _, _)) if graceful && *code != Some(0) => {
                let code = *code;
                self.violate(invariant, format!("holder exited with {code:?} after {what}, not 0"));
            }
            Some(_) => {}
            None => {
                self.violate(Invariant::Shut2, format!("holder did not exit within {DEADLINE:?} after {what}"));
                holder.kill_and_reap();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_burst: 4, max_clients: 4 };

    fn plans(seed: u64, n: usize, limits: &Limits) -> Vec<CyclePlan> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n).map(|_| CyclePlan::draw(&mut rng, limits)).collect()
    }

    /// VER-2: the schedule is a function of the seed.
    #[test]
    fn ver2_same_seed_same_schedule() {
        assert_eq!(plans(42, 200, &LIMITS), plans(42, 200, &LIMITS));
        assert_ne!(plans(42, 200, &LIMITS), plans(43, 200, &LIMITS));
    }

    proptest::proptest! {
        /// VER-2: the schedule is a function of the seed and the limits alone: drawn again it is the
        /// same, and how many cycles run (`--cycles`, `--duration`) changes none of the first ones;
        /// every plan stays within the limits.
        #[test]
        fn ver2_schedule_is_a_function_of_the_seed_and_limits(
            seed in proptest::prelude::any::<u64>(),
            max_burst in 1usize..=16,
            max_clients in 0usize..=16,
            cycles in 1usize..40,
            more in 0usize..40,
        ) {
            let limits = Limits { max_burst, max_clients };
            let longer = plans(seed, cycles + more, &limits);
            proptest::prop_assert_eq!(&plans(seed, cycles + more, &limits), &longer);
            proptest::prop_assert_eq!(&plans(seed, cycles, &limits)[..], &longer[..cycles]);
            for plan in &longer {
                proptest::prop_assert!((1..=max_burst).contains(&plan.burst) && plan.held_burst <= max_burst, "{:?}", plan);
                proptest::prop_assert!(plan.clients <= max_clients, "{:?}", plan);
                if let Ending::Race { contenders, .. } = plan.ending {
                    proptest::prop_assert!((1..=max_burst).contains(&contenders), "{:?}", plan);
                }
                if let Some(m) = plan.mid_start {
                    proptest::prop_assert!(m.jitter_us < 3_000, "{:?}", plan);
                }
            }
        }
    }

    /// The plans stay within the limits and reach every kind of fault.
    #[test]
    fn plans_respect_limits_and_cover_every_fault() {
        let limits = Limits { max_burst: 3, max_clients: 2 };
        let all = plans(7, 2_000, &limits);
        for plan in &all {
            assert!((1..=3).contains(&plan.burst) && plan.held_burst <= 3 && plan.clients <= 2, "{plan:?}");
            if let Ending::Race { contenders, .. } = plan.ending {
                assert!((1..=3).contains(&contenders));
            }
            if let Ending::MidShutdown { first, .. } = plan.ending {
                assert!(first.graceful());
            }
        }
        assert!(all.iter().any(|p| p.mid_start.is_some_and(|m| m.jitter_us == 0)));
        assert!(all.iter().any(|p| p.mid_start.is_some_and(|m| m.jitter_us > 0)));
        for signal in KillSignal::ALL {
            assert!(all.iter().any(|p| p.ending == Ending::Serving(signal)), "{signal:?}");
            assert!(all.iter().any(|p| matches!(p.ending, Ending::MidShutdown { second, .. } if second == signal)), "{signal:?}");
            assert!(all.iter().any(|p| matches!(p.ending, Ending::Race { signal: s, .. } if s == signal)), "{signal:?}");
        }
    }

    /// ERR-1 and LOCK-3 as `verify` checks them (VER-1: what counts as a violation).
    #[test]
    fn err1_refusal_check_is_exact() {
        let line = refusal_line(18789);
        assert_eq!(line, "GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:18789");
        assert!(check_refusal(18789, Some(3), "", &format!("{line}\n")).is_empty());
        assert!(check_refusal(18789, Some(5), "", &format!("{line}\nheld by pid 1 (gateway)\n")).is_empty());
        let ids = |found: Vec<(Invariant, String)>| found.into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(ids(check_refusal(18789, Some(4), "", &line)), [Invariant::Err1]);
        assert_eq!(ids(check_refusal(18789, None, "", &line)), [Invariant::Err1]);
        assert_eq!(ids(check_refusal(18789, Some(3), "", &format!("{line} "))), [Invariant::Err1]);
        assert_eq!(ids(check_refusal(18789, Some(3), "", &format!("warning: slow\n{line}"))), [Invariant::Err1]);
        assert_eq!(ids(check_refusal(18790, Some(3), "", &line)), [Invariant::Err1]);
        assert_eq!(ids(check_refusal(18789, Some(3), "listening on ws://127.0.0.1:18789\n", &line)), [Invariant::Lock3]);
    }

    /// VER-1: the summary is "ok" iff nothing was violated, and counts every ID.
    #[test]
    fn ver1_summary_counts_violations_by_id() {
        let mut tally = Tally::default();
        let json = tally.to_json(1, 2, Duration::ZERO);
        assert_eq!(json["ok"], true);
        for invariant in Invariant::ALL {
            assert_eq!(json["violations"][invariant.id()], 0);
        }
        tally.killed(KillSignal::Abrt);
        for n in 0..25 {
            tally.violate(n, Invariant::Rel2, "held".into());
        }
        let json = tally.to_json(1, 2, Duration::ZERO);
        assert_eq!(json["ok"], false);
        assert_eq!(json["violations"]["REL-2"], 25);
        assert_eq!(json["violationCount"], 25);
        assert_eq!(json["kills"]["SIGABRT"], 1);
        assert_eq!(json["firstViolations"].as_array().unwrap().len(), MAX_REPORTED);
        assert!(tally.to_text(1, 2, Duration::ZERO).contains("REL-2 25"));
    }
}
