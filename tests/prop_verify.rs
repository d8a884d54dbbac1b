//! Property tests of `gateway verify`'s own invariants (VER-1 … VER-4, `spec/invariants.md`) over
//! real processes, real ports and real signals.
//!
//! The subjects verify is pointed at are the real gateway (this crate's binary) and
//! `examples/bad_gateway.rs` with each of its defects (none; a wrong refusal message, ERR-1; a
//! refused start that prints on stdout, LOCK-3; a start that ignores the lock, LOCK-1; death on
//! `SIGTERM`/`SIGINT`, SHUT-1/SHUT-3; any combination). The schedule a seed gives is computed here
//! too, with the library's own [`CyclePlan::draw`], and decides which violations a defect must and
//! may produce:
//!
//! - VER-1: verify exits 0 with `"ok":true` iff the subject has no defect; otherwise exit 1, every
//!   violation counted under the ID the defect breaks (and only there), each reported one printed
//!   on stderr, then the command line that replays the seed;
//! - VER-2: the counts that depend on the schedule alone (starts, contenders, clients, kills by
//!   signal, mid-start and mid-shutdown kills) are those of the schedule drawn from the seed, and
//!   running the printed replay command line gives them again;
//! - VER-3: once verify has exited, no process it started is left: none still carries the run's
//!   marker in its environment, and none was left to be reaped by someone else (this test process
//!   is a child subreaper, so an unreaped child of verify, dead or alive, becomes *its* child); every
//!   start of the bad gateway recorded `RLIMIT_CORE` 0 0, although verify itself is started with
//!   the soft limit raised to the hard one, and no core file appeared; the private state directory
//!   of its gateways is gone; the port is free;
//! - VER-4: with the port held by a gateway (running or `SIGSTOP`ped), a foreign listener (with or
//!   without `SO_REUSEPORT`, accepting or not) or the bad gateway, verify exits 3 at once with the
//!   exact message, starts nothing, and the holder still listens and answers.
//!
//! Every verify run holds [`serial`]'s lock, so that the processes found after it can only be its
//! own. `PROPTEST_CASES` raises the case counts (defaults sized for CI on 2 busy cores).
#![cfg(target_os = "linux")]

// Of the integration tests' support (`tests/it/support/`), this binary shares the proptest
// configuration and the build of an example; processes, ports and clients are the harness's.
#[path = "it/support/examples.rs"]
mod examples;
#[path = "it/support/proptest_config.rs"]
mod proptest_config;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

#[path = "../src/bin/gateway/verify/schedule.rs"]
mod schedule;
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use proptest::prelude::*;
use proptest::sample::select;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use schedule::{CyclePlan, Ending, Limits};
use serde_json::Value;

use gateway_harness::net::{self, ForeignListener};
use gateway_harness::proc::{self, Proc, Stopped, Streams};
use gateway_harness::scratch::Scratch;
use gateway_harness::spec;
use proptest_config::config;

/// Generous upper bound for anything that should happen "at once" (CI has 2 busy cores).
const DEADLINE: Duration = Duration::from_secs(10);

/// Cases run by default (`PROPTEST_CASES` overrides): campaigns of 7 verify runs each, replays
/// (2 runs each), held ports (1 run each). The whole file takes a few seconds.
const CAMPAIGNS: u32 = 6;
const REPLAYS: u32 = 8;
const HELD_PORTS: u32 = 24;
/// A whole verify run (a few cycles) must end within this.
const RUN_DEADLINE: Duration = Duration::from_secs(60);
/// Every invariant ID `gateway verify` counts (`spec/cli.md`).
const IDS: [&str; 10] = ["LOCK-1", "LOCK-3", "LOCK-6", "REL-1", "REL-2", "SHUT-1", "SHUT-2", "SHUT-3", "ERR-1", "SRV-2"];
/// The name of the environment variable that marks the processes of one verify run.
const MARKER: &str = "PROP_VERIFY_RUN";

/// The bad gateway's binary, built once.
fn bad_gateway_bin() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| examples::example_bin("bad_gateway"))
}

/// Serialises every process-spawning step of this file. The first call builds the bad gateway
/// (while nothing else runs) and then makes this process a child subreaper: a process verify
/// leaves unreaped is reparented here, where [`leftovers`] finds it.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    static SUBREAPER: OnceLock<()> = OnceLock::new();
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    SUBREAPER.get_or_init(|| {
        bad_gateway_bin();
        nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    });
    guard
}

/// A defect of `examples/bad_gateway.rs` (`BAD_GATEWAY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Defect {
    Message,
    Stdout,
    IgnoreLock,
    DieOnTerm,
}

impl Defect {
    const ALL: [Defect; 4] = [Defect::Message, Defect::Stdout, Defect::IgnoreLock, Defect::DieOnTerm];

    fn name(self) -> &'static str {
        match self {
            Defect::Message => "message",
            Defect::Stdout => "stdout",
            Defect::IgnoreLock => "ignore-lock",
            Defect::DieOnTerm => "die-on-term",
        }
    }
}

/// What verify is pointed at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    /// This crate's gateway (verify's default executable).
    Real,
    /// `bad_gateway` with these defects (maybe none).
    Bad(Vec<Defect>),
}

impl Subject {
    fn defects(&self) -> &[Defect] {
        match self {
            Subject::Real => &[],
            Subject::Bad(defects) => defects,
        }
    }
}

/// The flags of one verify run.
#[derive(Debug, Clone)]
struct Params {
    seed: u64,
    cycles: u64,
    max_burst: usize,
    max_clients: usize,
    /// Pass a free port with `--port` (else verify chooses one).
    explicit_port: bool,
}

/// The schedule verify draws from the seed: the library's own [`CyclePlan::draw`] on a
/// `StdRng` seeded with it, one plan per cycle.
fn plans(p: &Params) -> Vec<CyclePlan> {
    let mut rng = StdRng::seed_from_u64(p.seed);
    let limits = Limits { max_burst: p.max_burst, max_clients: p.max_clients };
    (0..p.cycles).map(|_| CyclePlan::draw(&mut rng, &limits)).collect()
}

/// The violation IDs a subject must produce under a schedule (certainly seen) and may produce
/// (seen or not, by timing). A correct subject must and may produce none.
fn expected(subject: &Subject, plans: &[CyclePlan]) -> (BTreeSet<&'static str>, BTreeSet<&'static str>) {
    let (mut must, mut may) = (BTreeSet::new(), BTreeSet::new());
    let defects = subject.defects();
    let has = |d| defects.contains(&d);
    // A refusal is certain in a burst of two or more on the free port and in a burst against the
    // holder; the contenders of a race may be refused or not.
    let refusal_certain = plans.iter().any(|p| p.burst >= 2 || p.held_burst >= 1);
    let refusal_possible = refusal_certain || plans.iter().any(|p| matches!(p.ending, Ending::Race { .. }));
    if has(Defect::IgnoreLock) {
        // Every start prints the ready line: two or more contenders at once make two holders.
        let certain = plans
            .iter()
            .any(|p| p.burst >= 2 || p.held_burst >= 1 || matches!(p.ending, Ending::Race { contenders, .. } if contenders >= 2));
        if certain {
            must.insert("LOCK-1");
        }
        may.insert("LOCK-1");
    } else {
        for (defect, id) in [(Defect::Message, "ERR-1"), (Defect::Stdout, "LOCK-3")] {
            if has(defect) && refusal_possible {
                may.insert(id);
                if refusal_certain {
                    must.insert(id);
                }
            }
        }
    }
    if has(Defect::DieOnTerm) {
        // A graceful signal to the holder must end it with exit 0; killed by it, it breaks SHUT-1,
        // or SHUT-3 when the second signal of a shutdown is graceful too.
        for p in plans {
            let id = match p.ending {
                Ending::Serving(s) | Ending::Race { signal: s, .. } if s.graceful() => "SHUT-1",
                Ending::MidShutdown { second, .. } if second.graceful() => "SHUT-3",
                _ => continue,
            };
            must.insert(id);
            may.insert(id);
        }
    }
    (must, may)
}

/// The summary counts that depend on the schedule alone (VER-2), as the plans predict them for
/// a subject on which no burst is left without a winner (LOCK-6) and every client connects (SRV-2).
fn predicted_counts(plans: &[CyclePlan]) -> BTreeMap<String, u64> {
    let mut c = BTreeMap::new();
    let mut add = |key: &str, n: u64| *c.entry(key.to_string()).or_insert(0) += n;
    add("cycles", plans.len() as u64);
    for key in ["starts", "contenders", "clients", "killsMidStart", "killsMidShutdown", "SIGTERM", "SIGINT", "SIGABRT", "SIGKILL"] {
        add(key, 0);
    }
    for p in plans {
        if let Some(m) = p.mid_start {
            add("starts", 1);
            add("killsMidStart", 1);
            add(m.signal.name(), 1);
        }
        let race = match p.ending {
            Ending::Race { contenders, .. } => contenders,
            _ => 0,
        };
        let contenders = (p.burst + p.held_burst + race) as u64;
        add("contenders", contenders);
        add("starts", contenders);
        add("clients", p.clients as u64);
        match p.ending {
            Ending::Serving(s) | Ending::Race { signal: s, .. } => add(s.name(), 1),
            Ending::MidShutdown { first, second } => {
                add(first.name(), 1);
                add(second.name(), 1);
                if p.clients > 0 {
                    add("killsMidShutdown", 1);
                }
            }
        }
    }
    c
}

/// The same counts as a summary reports them. `SIGKILL` is left out: a race's successor (if one
/// won, a matter of timing) is killed with it too.
fn schedule_counts(json: &Value) -> BTreeMap<String, u64> {
    let mut c = BTreeMap::new();
    for key in ["cycles", "starts", "contenders", "clients", "killsMidStart", "killsMidShutdown"] {
        c.insert(key.to_string(), json[key].as_u64().unwrap_or(u64::MAX));
    }
    for s in ["SIGTERM", "SIGINT", "SIGABRT"] {
        c.insert(s.to_string(), json["kills"][s].as_u64().unwrap_or(u64::MAX));
    }
    c
}

/// What one verify run did.
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// The `RLIMIT_CORE` (`soft hard`) every start of the bad gateway recorded.
    starts: Vec<String>,
    /// What verify left in its working and temporary directory: core files (a relative
    /// `core_pattern`), the private state directory of its gateways.
    remains: Vec<String>,
    /// Processes of the run still there after it exited (killed and reaped since).
    leftovers: Vec<String>,
}

/// Runs `gateway verify ARGS` with `env` to completion (within [`RUN_DEADLINE`]) while holding
/// [`serial`]'s lock (`_serial`); `known` are this process's own children (holders). Finds, kills
/// and reaps whatever the run left behind.
fn run_verify(_serial: &MutexGuard<'static, ()>, args: &[String], env: &[(&str, String)], known: &[u32]) -> Outcome {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let marker = format!("{}-{}", std::process::id(), RUNS.fetch_add(1, Ordering::Relaxed));
    let reports = tempfile::tempdir().expect("report directory");
    let mut cmd = Command::new(gateway_bin());
    // Its own HOME and XDG directories (DOOR-6), so that nothing lands in the user's home.
    let home = Scratch::new("prop-verify-home").expect("scratch directory");
    home.instance().expect("scratch directory").apply(&mut cmd);
    // Run in the report directory: a core file (`core_pattern` is often relative) lands there; and
    // with it as the temporary directory, where verify makes the private state directory of its gateways.
    cmd.current_dir(reports.path())
        .env("TMPDIR", reports.path())
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(MARKER, &marker)
        .env("BAD_GATEWAY_REPORT_DIR", reports.path());
    // Core dumps allowed as far as this process may allow them, so that only verify itself can
    // forbid them to its children (VER-3).
    // SAFETY: between fork and exec only async-signal-safe calls (getrlimit, setrlimit).
    unsafe {
        cmd.pre_exec(|| {
            let (_, hard) = getrlimit(Resource::RLIMIT_CORE)?;
            setrlimit(Resource::RLIMIT_CORE, hard, hard).map_err(std::io::Error::from)
        });
    }
    let shown = format!("{cmd:?}");
    let done = proc::run(cmd, Streams::default(), RUN_DEADLINE).unwrap_or_else(|e| panic!("{shown}: {e}"));
    let (status, stdout, stderr) = (done.status, done.stdout, done.stderr);
    let leftovers = leftovers(&format!("{MARKER}={marker}"), known);
    // Complete reports only (`PID`): a start killed while writing leaves a `.PID` file behind.
    let (mut starts, mut remains) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(reports.path()).expect("read the report directory") {
        let path = entry.expect("report entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if name.bytes().all(|b| b.is_ascii_digit()) {
            starts.push(std::fs::read_to_string(&path).unwrap_or_default().trim().to_string());
        } else if name.starts_with("core") || name.starts_with("gateway-verify-") {
            remains.push(name);
        }
    }
    Outcome { code: status.code(), stdout, stderr, starts, remains, leftovers }
}

/// The processes that carry `marker_kv` in their environment, or that are children of this
/// process without being one of `known` (orphans of a verify run, reparented here, dead or
/// alive). Each is killed and, if it is a child, reaped.
fn leftovers(marker_kv: &str, known: &[u32]) -> Vec<String> {
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid == me || known.contains(&pid) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let comm = &stat[open + 1..close];
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or("?").to_string();
        let ppid: u32 = rest.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let orphan = ppid == me;
        let marked = std::fs::read(format!("/proc/{pid}/environ"))
            .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker_kv.as_bytes()))
            .unwrap_or(false);
        if orphan || marked {
            found.push(format!("pid {pid} ({comm}, state {state}, {})", if orphan { "left unreaped" } else { "still running" }));
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            if orphan {
                let _ = waitpid(Pid::from_raw(pid as i32), None);
            }
        }
    }
    found
}

/// A free port below the ephemeral range (as verify chooses one itself), for `--port`.
fn free_port() -> u16 {
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| gateway_harness::net::parse_port_range(&r))
        .map_or(32_768, |(lo, _)| lo)
        .max(10_340);
    let mut rng = rand::rng();
    (0..1000)
        .map(|_| rng.random_range(10_240..low))
        .find(|p| gateway_lock::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, *p))).is_ok())
        .expect("a free port below the ephemeral range")
}

fn summary(stdout: &str) -> Result<Value, TestCaseError> {
    serde_json::from_str(stdout.trim()).map_err(|e| TestCaseError::fail(format!("not one JSON object ({e}): {stdout:?}")))
}

/// The command line (`verify --json …`) and environment of a run of `subject` with `p`.
fn verify_args(subject: &Subject, p: &Params, port: Option<u16>) -> (Vec<String>, Vec<(&'static str, String)>) {
    let mut args: Vec<String> = ["verify", "--json", "--seed", &p.seed.to_string(), "--cycles", &p.cycles.to_string()]
        .into_iter()
        .chain(["--max-burst", &p.max_burst.to_string(), "--max-clients", &p.max_clients.to_string()])
        .map(String::from)
        .collect();
    let mut env = Vec::new();
    if let Subject::Bad(defects) = subject {
        args.extend(["--exe".to_string(), bad_gateway_bin().display().to_string()]);
        env.push(("BAD_GATEWAY", defects.iter().map(|d| d.name()).collect::<Vec<_>>().join(",")));
    }
    if let Some(port) = port {
        args.extend(["--port".to_string(), port.to_string()]);
    }
    (args, env)
}

/// VER-1, VER-2, VER-3: one verify run of `subject` with `p`, checked against the schedule.
fn check_run(subject: &Subject, p: &Params) -> Result<(), TestCaseError> {
    let serial = serial();
    let plans = plans(p);
    let port = p.explicit_port.then(free_port);
    let (args, env) = verify_args(subject, p, port);
    let out = run_verify(&serial, &args, &env, &[]);
    let seen = format!("{subject:?} {p:?}\nexit {:?}\nstdout {}\nstderr {}", out.code, out.stdout, out.stderr);

    // VER-3: nothing left behind, no core dumps allowed, the port free.
    prop_assert!(out.leftovers.is_empty(), "VER-3: processes left behind: {:?}\n{seen}", out.leftovers);
    prop_assert!(out.remains.is_empty(), "VER-3: files left behind: {:?}\n{}", out.remains, seen);
    for limit in &out.starts {
        prop_assert_eq!(limit.as_str(), "0 0", "VER-3: a start ran with RLIMIT_CORE {}\n{}", limit, seen);
    }
    let json = summary(&out.stdout)?;
    let used = json["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    prop_assert!(used.is_some() && port.is_none_or(|p| used == Some(p)), "the summary names the port: {seen}");
    let used = used.unwrap_or_default();
    if let Err(err) = gateway_lock::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, used))) {
        return Err(TestCaseError::fail(format!("VER-3: port {used} still held after verify: {err}\n{seen}")));
    }

    // VER-1: the verdict is the subject's, and each violation is counted under its ID.
    let (must, may) = expected(subject, &plans);
    let counts: BTreeMap<&str, u64> = IDS.iter().map(|id| (*id, json["violations"][id].as_u64().unwrap_or(u64::MAX))).collect();
    let nonzero: BTreeSet<&str> = counts.iter().filter(|(_, n)| **n > 0).map(|(id, _)| *id).collect();
    prop_assert!(must.is_subset(&nonzero), "VER-1: violations {:?} expected, counted {:?}\n{}", must, counts, seen);
    prop_assert!(nonzero.is_subset(&may), "VER-1: violations counted {:?}, only {:?} possible\n{}", counts, may, seen);
    let total: u64 = counts.values().sum();
    let ok = total == 0;
    prop_assert_eq!(ok, subject.defects().is_empty(), "VER-1: ok iff the subject has no defect\n{}", seen);
    prop_assert_eq!(out.code, Some(if ok { 0 } else { 1 }), "VER-1: exit code\n{}", seen);
    prop_assert_eq!(&json["ok"], &Value::Bool(ok), "{}", seen);
    prop_assert_eq!(json["violationCount"].as_u64(), Some(total), "{}", seen);
    prop_assert_eq!(json["seed"].as_u64(), Some(p.seed), "{}", seen);
    let reported = json["firstViolations"].as_array().cloned().unwrap_or_default();
    prop_assert_eq!(reported.len() as u64, total.min(20), "the first 20 violations are reported\n{}", seen);
    let mut lines: Vec<&str> = out.stderr.lines().collect();
    if ok {
        prop_assert!(out.stderr.is_empty(), "a passing run prints nothing on stderr off a terminal\n{}", seen);
    } else {
        // VER-2: the last line replays the run.
        let mut replay = format!(
            "gateway verify: {total} violation(s); reproduce the schedule with: gateway verify --seed {} --cycles {} --port {used} --max-burst {} --max-clients {}",
            p.seed, p.cycles, p.max_burst, p.max_clients
        );
        if matches!(subject, Subject::Bad(_)) {
            let exe = bad_gateway_bin().display().to_string();
            replay.push_str(&format!(" --exe {}", shlex::try_quote(&exe).unwrap()));
        }
        replay.push_str(" --json");
        prop_assert_eq!(lines.pop(), Some(replay.as_str()), "VER-2: the replay line\n{}", seen);
        let printed: Vec<String> = reported
            .iter()
            .map(|v| {
                format!("violation {} in cycle {}: {}", v["id"].as_str().unwrap_or("?"), v["cycle"], v["detail"].as_str().unwrap_or("?"))
            })
            .collect();
        prop_assert_eq!(lines, printed, "VER-1: every reported violation on stderr\n{}", seen);
        for v in &reported {
            prop_assert!(v["id"].as_str().is_some_and(|id| nonzero.contains(id)), "{}", seen);
        }
    }

    // VER-2: the counts that depend on the schedule alone are the seed's.
    let mut predicted = predicted_counts(&plans);
    let planned_sigkill = predicted.remove("SIGKILL").unwrap_or(0);
    let races = plans.iter().filter(|p| matches!(p.ending, Ending::Race { .. })).count() as u64;
    prop_assert_eq!(schedule_counts(&json), predicted, "VER-2: counts of the schedule drawn from the seed\n{}", seen);
    let sigkill = json["kills"]["SIGKILL"].as_u64().unwrap_or(u64::MAX);
    prop_assert!((planned_sigkill..=planned_sigkill + races).contains(&sigkill), "VER-2: SIGKILLs {sigkill}\n{seen}");

    // VER-3: every start of the bad gateway reported (a mid-start kill may come before it could).
    if let Subject::Bad(_) = subject {
        let starts = json["starts"].as_u64().unwrap_or(0);
        let mid = json["killsMidStart"].as_u64().unwrap_or(0);
        let recorded = out.starts.len() as u64;
        prop_assert!(recorded <= starts && recorded + mid >= starts, "{recorded} starts recorded of {starts}\n{seen}");
    }
    Ok(())
}

fn params(bad: bool) -> impl Strategy<Value = Params> {
    (any::<u64>(), 1..=3u64, 1..=4usize, 0..=2usize, any::<bool>()).prop_map(move |(seed, cycles, max_burst, clients, explicit_port)| {
        // The bad gateway never completes a WebSocket handshake.
        Params { seed, cycles, max_burst, max_clients: if bad { 0 } else { clients }, explicit_port }
    })
}

/// A subject with run parameters whose schedule gives each of its defects a chance to show.
fn run_of(subject: Subject) -> BoxedStrategy<(Subject, Params)> {
    let bad = matches!(subject, Subject::Bad(_));
    params(bad)
        .prop_map(move |p| (subject.clone(), p))
        .prop_filter("the schedule exposes the defects", |(s, p)| s.defects().is_empty() || !expected(s, &plans(p)).0.is_empty())
        .boxed()
}

/// Every kind of subject once (the real gateway, the bad one without and with each defect),
/// plus one random combination of defects, each with its own seed and limits.
fn campaign() -> impl Strategy<Value = Vec<(Subject, Params)>> {
    let mut runs = vec![run_of(Subject::Real), run_of(Subject::Bad(vec![]))];
    runs.extend(Defect::ALL.iter().map(|d| run_of(Subject::Bad(vec![*d]))));
    let combination = proptest::sample::subsequence(Defect::ALL.to_vec(), 2..=4).prop_flat_map(|d| run_of(Subject::Bad(d)));
    runs.push(combination.boxed());
    runs
}

/// Who holds the port in VER-4.
#[derive(Debug, Clone, Copy)]
enum HolderKind {
    /// A running gateway.
    Gateway,
    /// A gateway stopped with `SIGSTOP` (the kernel still accepts into its backlog).
    StoppedGateway,
    /// A listener of this test process: accepting (and closing) or never accepting; with or
    /// without `SO_REUSEPORT`.
    Foreign { accepting: bool, reuseport: bool },
    /// The bad gateway (no defect).
    BadGateway,
}

/// A held port and whatever holds it (dropped, it ends the holder).
struct Held {
    addr: SocketAddr,
    process: Option<Holder>,
    /// A foreign listener of this process (the harness's), held until dropped.
    _listener: Option<ForeignListener>,
    stopped: Option<Stopped>,
}

/// A process holding a port: the harness's [`Proc`] (killed and reaped when dropped) that printed
/// its ready line, with its own scratch directories, removed after it is reaped.
struct Holder {
    proc: Proc,
    addr: SocketAddr,
    _scratch: Scratch,
}

/// Starts `cmd` (logging at `warn`, in its own scratch directories) and reads its ready line (bounded).
fn start_holder(mut cmd: Command) -> Holder {
    let scratch = Scratch::new("prop-verify-holder").expect("scratch directory");
    scratch.instance().expect("scratch directory").apply(&mut cmd);
    cmd.env("GATEWAY_LOG", "warn");
    let mut proc = Proc::spawn(cmd, Stdio::null(), false).expect("spawn");
    let line = proc.read_line(DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    let addr = spec::ready_addr(&line).unwrap_or_else(|| panic!("unexpected ready line {line:?}"));
    Holder { proc, addr, _scratch: scratch }
}

/// Path of the shipped binary.
fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gateway"))
}

/// The pid a gateway reports in `/healthz`.
fn health_pid(addr: SocketAddr) -> i64 {
    let answer = net::http_get(addr, "/healthz", DEADLINE).expect("GET /healthz");
    let json = net::Answer::parse(&answer).unwrap_or_else(|| panic!("not HTTP: {answer:?}")).json();
    json["pid"].as_i64().unwrap_or_else(|| panic!("no pid in the health body: {answer:?}"))
}

fn hold(kind: HolderKind) -> Held {
    let (process, listener) = match kind {
        HolderKind::Gateway | HolderKind::StoppedGateway => {
            let mut cmd = Command::new(gateway_bin());
            cmd.args(["run", "--port", "0"]);
            (Some(start_holder(cmd)), None)
        }
        HolderKind::BadGateway => {
            let mut cmd = Command::new(bad_gateway_bin());
            cmd.args(["run", "--host", "127.0.0.1", "--port", "0"]);
            (Some(start_holder(cmd)), None)
        }
        HolderKind::Foreign { accepting, reuseport } => {
            let listener = if reuseport {
                let socket = gateway_harness::net::reuseport_listener(0).expect("SO_REUSEPORT listener");
                ForeignListener::from_listener(socket.into(), accepting)
            } else {
                ForeignListener::try_bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), accepting)
            };
            (None, Some(listener.expect("foreign listener")))
        }
    };
    let addr = process.as_ref().map(|h| h.addr).or_else(|| listener.as_ref().map(|l| l.addr)).expect("held address");
    let stopped = matches!(kind, HolderKind::StoppedGateway).then(|| {
        let pid = process.as_ref().expect("gateway").proc.pid();
        Stopped::stop(pid, DEADLINE).unwrap_or_else(|e| panic!("SIGSTOP: {e}"))
    });
    Held { addr, process, _listener: listener, stopped }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Continue a stopped holder before its `Holder` kills and reaps it.
        self.stopped.take();
    }
}

fn holder_kind() -> impl Strategy<Value = HolderKind> {
    prop_oneof![
        Just(HolderKind::Gateway),
        Just(HolderKind::StoppedGateway),
        (any::<bool>(), any::<bool>()).prop_map(|(accepting, reuseport)| HolderKind::Foreign { accepting, reuseport }),
        Just(HolderKind::BadGateway),
    ]
}

proptest! {
    #![proptest_config(config(CAMPAIGNS, 64))]

    /// VER-1 (exit 0 and `"ok":true` iff the subject has no defect; violations counted under the
    /// IDs the defect breaks, and printed), VER-2 (the schedule's counts are the seed's; the
    /// replay line), VER-3 (no process left, alive or unreaped; `RLIMIT_CORE` 0; the port free),
    /// for every kind of subject in each case.
    #[test]
    fn ver1_ver2_ver3_verdict_follows_the_subject_and_nothing_is_left_behind(runs in campaign()) {
        for (subject, p) in &runs {
            check_run(subject, p)?;
        }
    }
}

proptest! {
    #![proptest_config(config(REPLAYS, 64))]

    /// VER-2 end to end: the command line a failed run prints (or, for a passing run, the same
    /// flags) replays the schedule: the counts that depend on it alone are the same in both runs,
    /// and those of the schedule drawn from the seed.
    #[test]
    fn ver2_the_printed_command_line_replays_the_schedule(
        (subject, p) in select(vec![
            Subject::Real,
            Subject::Bad(vec![Defect::Message]),
            Subject::Bad(vec![Defect::IgnoreLock]),
            Subject::Bad(vec![Defect::DieOnTerm]),
        ]).prop_flat_map(run_of)
    ) {
        let serial = serial();
        let (args, env) = verify_args(&subject, &p, None);
        let first = run_verify(&serial, &args, &env, &[]);
        let seen = format!("{subject:?} {p:?}\nexit {:?}\nstdout {}\nstderr {}", first.code, first.stdout, first.stderr);
        prop_assert!(first.leftovers.is_empty(), "VER-3: {:?}\n{}", first.leftovers, seen);
        let json = summary(&first.stdout)?;
        let again: Vec<String> = if first.code == Some(0) {
            // The same flags, on the same port.
            args.iter().cloned().chain(["--port".to_string(), json["port"].to_string()]).collect()
        } else {
            let line = first.stderr.lines().last().unwrap_or("");
            let Some((_, command)) = line.split_once("reproduce the schedule with: gateway ") else {
                return Err(TestCaseError::fail(format!("VER-2: no replay line\n{seen}")));
            };
            // A shell command line (the `--exe` path quoted if need be); it keeps `--json`.
            shlex::split(command).ok_or_else(|| TestCaseError::fail(format!("VER-2: replay line is not a shell command\n{seen}")))?
        };
        let second = run_verify(&serial, &again, &env, &[]);
        let seen = format!("{seen}\nreplayed with {again:?}: exit {:?}\nstdout {}\nstderr {}", second.code, second.stdout, second.stderr);
        prop_assert!(second.leftovers.is_empty(), "VER-3: {:?}\n{}", second.leftovers, seen);
        let replayed = summary(&second.stdout)?;
        prop_assert_eq!(second.code, first.code, "{}", seen);
        prop_assert_eq!(&replayed["seed"], &json["seed"], "{}", seen);
        prop_assert_eq!(&replayed["port"], &json["port"], "{}", seen);
        prop_assert_eq!(schedule_counts(&replayed), schedule_counts(&json), "VER-2: the replay's schedule differs\n{}", seen);
        let mut predicted = predicted_counts(&plans(&p));
        predicted.remove("SIGKILL");
        prop_assert_eq!(schedule_counts(&json), predicted, "VER-2: not the schedule of seed {}\n{}", p.seed, seen);
    }
}

proptest! {
    #![proptest_config(config(HELD_PORTS, 64))]

    /// VER-4: whatever holds `--port`, verify exits 3 at once with the exact message, starts no
    /// process, and the holder still listens (and a gateway still answers as itself).
    #[test]
    fn ver4_a_held_port_is_refused_at_once_and_the_holder_left_alone(
        kind in holder_kind(),
        seed in any::<u64>(),
        cycles in 1..=3u64,
        via_bad_gateway in any::<bool>(),
        json in any::<bool>(),
    ) {
        let serial = serial();
        let mut held = hold(kind);
        let port = held.addr.port();
        let known: Vec<u32> = held.process.as_ref().map(|h| h.proc.pid()).into_iter().collect();
        let mut args: Vec<String> =
            ["verify", "--port", &port.to_string(), "--seed", &seed.to_string(), "--cycles", &cycles.to_string()].map(String::from).to_vec();
        if json {
            args.push("--json".into());
        }
        if via_bad_gateway {
            args.extend(["--exe".to_string(), bad_gateway_bin().display().to_string()]);
        }
        let out = run_verify(&serial, &args, &[], &known);
        let seen = format!("{kind:?} {args:?}\nexit {:?}\nstdout {}\nstderr {}", out.code, out.stdout, out.stderr);
        prop_assert_eq!(out.code, Some(3), "VER-4: exit code\n{}", seen);
        let refusal = spec::held_message(&spec::url("127.0.0.1", port));
        let message = format!("gateway verify: port {port} is not free: {}\n", refusal.trim_start_matches("GatewayLockError: "));
        prop_assert_eq!(&out.stderr, &message, "VER-4: the message\n{}", seen);
        prop_assert!(out.stdout.is_empty(), "{}", seen);
        prop_assert!(out.starts.is_empty(), "VER-4: verify started {} process(es)\n{}", out.starts.len(), seen);
        prop_assert!(out.leftovers.is_empty(), "VER-4: processes of the run: {:?}\n{}", out.leftovers, seen);
        prop_assert!(out.remains.is_empty(), "VER-4: files of the run: {:?}\n{}", out.remains, seen);

        // The holder is untouched: alive, still listening, a gateway still answering as itself.
        if let Some(process) = held.process.as_mut() {
            prop_assert!(process.proc.exited().is_none(), "VER-4: the holder exited\n{seen}");
        }
        if let Some(guard) = &held.stopped {
            prop_assert!(gateway_harness::sockets::is_stopped(guard.pid()), "VER-4: the stopped holder was continued\n{seen}");
        }
        prop_assert!(TcpStream::connect_timeout(&held.addr, DEADLINE).is_ok(), "VER-4: the holder no longer listens\n{seen}");
        held.stopped.take();
        if matches!(kind, HolderKind::Gateway | HolderKind::StoppedGateway) {
            let pid = held.process.as_ref().map(|h| i64::from(h.proc.pid()));
            prop_assert_eq!(Some(health_pid(held.addr)), pid, "VER-4: the holder answers as itself\n{}", seen);
        }
    }
}
