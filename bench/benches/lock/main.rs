//! `just bench`: what the lock costs, measured against the physical limit of this machine.
//!
//! Each figure of the release `gateway` sits beside the same figure of `min_binder`
//! (`bench/src/min_binder.rs`: a std-only program that binds, listens and prints), measured in the
//! same run, interleaved run by run. Reported: median, p10–p90 and the ratio of medians; the table
//! ([`table`]) goes to stdout and a JSON file to `target/bench/lock.json`. Processes are started,
//! read, signalled and reaped with the black-box harness (`gateway-harness`), as in the tests,
//! the conformance runner and `gateway verify`; the clients are the harness's ([`clients`]).
//!
//! - time to lock: exec of `gateway run` → the port accepts a TCP connection;
//! - time to fail: exec of a second instance → it has exited with the lock error (code 3, or 5
//!   once the refusal probes the holder and finds a healthy gateway);
//! - takeover: SIGKILL of the holder → a fresh start (or a `--wait` successor that already
//!   watches the holder, if the binary has that flag) holds the port;
//! - graceful shutdown: SIGTERM → the holder has exited and the port is free, with 0, 100 and
//!   1,000 WebSocket clients (plain TCP connections for the baseline);
//! - footprint: resident memory and threads of an idle holder (`/proc/<pid>/status`).
//!
//! `BENCH_RUNS` (default 40) sets the runs per figure; shutdown with 1,000 clients uses a quarter.
//! Measuring waits on readiness by polling `connect` (that *is* the definition of "accepts a
//! connection") and on exits with the harness's process descriptor wait (seen at once); no sleeps.

mod clients;
mod table;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gateway_harness::net::{self, loopback};
use gateway_harness::proc::{Launch, Proc};
use gateway_harness::scratch::Scratch;
use gateway_harness::{sockets, spec};
use nix::sys::signal::Signal;

use clients::Clients;
use table::{report, stats, Goal, Row};

const DEADLINE: Duration = Duration::from_secs(10);

/// The gateway token of the measured gateways (when the build has `--token`).
const BENCH_TOKEN: &str = "bench-token-0123456789";

/// One of the two programs measured.
#[derive(Clone)]
struct Target {
    name: &'static str,
    exe: PathBuf,
    gateway: bool,
    /// Extra flags of `gateway run` (connection limits raised for the 1,000-client figures).
    extra: Vec<String>,
    /// The gateway speaks the OpenClaw protocol: clients complete its handshake.
    protocol: bool,
    /// The gateways' private state directory (`XDG_STATE_HOME`, also their `HOME` and `TMPDIR`),
    /// shared by all their starts.
    state: PathBuf,
}

impl Target {
    /// Starts an instance on `port` with `more` arguments (waiting for nothing).
    fn spawn(&self, port: u16, more: &[&str]) -> Proc {
        let mut args = Vec::new();
        if self.gateway {
            args.extend(["run".to_string(), "--port".to_string(), port.to_string()]);
            args.extend(self.extra.iter().cloned());
        } else {
            args.push(port.to_string());
        }
        args.extend(more.iter().map(|a| a.to_string()));
        let mut cmd = Launch::Exec(self.exe.clone(), args).command();
        if self.gateway {
            // DOOR-6 (nothing left behind): a scratch HOME, XDG_STATE_HOME and TMPDIR, removed at the end.
            cmd.env("GATEWAY_LOG", "warn").env("XDG_STATE_HOME", &self.state).env("HOME", &self.state).env("TMPDIR", &self.state);
        }
        Proc::spawn(cmd, Stdio::null(), false).expect("spawn")
    }

    /// Spawns a holder and waits for its ready line.
    fn start(&self, port: u16) -> Proc {
        let mut proc = self.spawn(port, &[]);
        let line = proc.read_line(DEADLINE).expect("no ready line before the deadline");
        assert_eq!(line.trim_end(), spec::ready_line("127.0.0.1", port), "{} printed {line:?}", self.name);
        proc
    }
}

/// Polls `connect` until the port accepts (the definition of "holds the port").
fn wait_accepting(port: u16, since: Instant) -> Duration {
    loop {
        if std::net::TcpStream::connect(loopback(port)).is_ok() {
            return since.elapsed();
        }
        assert!(since.elapsed() < DEADLINE, "port {port} never accepted");
        std::thread::yield_now();
    }
}

/// Polls until the `--wait` successor `waiter` has an established connection (to the holder: it
/// has been refused and now watches it, OPS-4), so the takeover measures the handover, not the
/// successor's start.
fn wait_until_watched(waiter: &Proc) {
    let since = Instant::now();
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let rows = sockets::parse_proc_net_tcp(&table);
        if rows.iter().any(|r| r.state == 0x01 && !sockets::fds_on_inode(waiter.pid(), r.inode).is_empty()) {
            return;
        }
        assert!(since.elapsed() < DEADLINE, "the --wait successor never watched the holder");
        std::thread::yield_now();
    }
}

/// Kills and reaps an instance (its stderr shown with `BENCH_STDERR` set).
fn stop(mut proc: Proc) {
    proc.kill();
    if std::env::var_os("BENCH_STDERR").is_some() {
        eprint!("{}", proc.stderr_so_far());
    }
}

fn assert_free(port: u16) {
    assert!(net::port_free(port), "port {port} should be free: {}", sockets::describe_holders(loopback(port)));
}

fn time_to_lock(t: &Target, port: u16) -> Duration {
    let t0 = Instant::now();
    let proc = t.spawn(port, &[]);
    let d = wait_accepting(port, t0);
    stop(proc);
    d
}

/// (exec → the refusal line on stderr, exec → exited).
fn time_to_fail(t: &Target, port: u16) -> (Duration, Duration) {
    let t0 = Instant::now();
    let mut proc = t.spawn(port, &[]);
    let line = proc.stderr_first_line(DEADLINE).unwrap_or_default();
    let to_line = t0.elapsed();
    assert_eq!(line, spec::held_message(&spec::url("127.0.0.1", port)), "{}", t.name);
    let status = proc.wait(DEADLINE).expect("the refused instance exits");
    let to_exit = t0.elapsed();
    // 3: port held (ERR-1); 5: held by a healthy gateway (the refusal probes the holder first).
    let refused = matches!(status.code(), Some(spec::exit::HELD | spec::exit::HELD_BY_GATEWAY));
    assert!(refused, "{}: the second instance must be refused, got {status}", t.name);
    (to_line, to_exit)
}

fn takeover_fresh(t: &Target, port: u16) -> Duration {
    let mut holder = t.start(port);
    let t0 = Instant::now();
    holder.signal(Signal::SIGKILL).expect("SIGKILL");
    let _ = holder.wait(DEADLINE);
    let proc = t.spawn(port, &[]);
    let d = wait_accepting(port, t0);
    stop(proc);
    d
}

fn takeover_wait(t: &Target, port: u16) -> Duration {
    let mut holder = t.start(port);
    let waiter = t.spawn(port, &["--wait"]);
    wait_until_watched(&waiter);
    let t0 = Instant::now();
    holder.signal(Signal::SIGKILL).expect("SIGKILL");
    let _ = holder.wait(DEADLINE);
    let d = wait_accepting(port, t0);
    stop(waiter);
    d
}

/// Time on a CPU and time waiting for one (run queue) of a process so far, in ms
/// (`/proc/<pid>/schedstat`; readable until the process is reaped).
fn sched_ms(pid: u32) -> (f64, f64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().unwrap_or(0.0) / 1e6);
    (fields.next().unwrap_or(0.0), fields.next().unwrap_or(0.0))
}

/// A shutdown measured: wall time SIGTERM → exited (port free), the holder's time on a CPU
/// meanwhile, and its time waiting for a CPU (contention from other load).
struct Shutdown {
    wall: f64,
    cpu: f64,
    queued: f64,
}

/// One figure of a [`Shutdown`] sample.
type ShutdownFigure = fn(&Shutdown) -> f64;

fn graceful_shutdown(t: &Target, port: u16, clients: usize) -> Shutdown {
    let mut holder = t.start(port);
    let conns = t.clients(port, clients);
    let pid = holder.pid();
    let (cpu0, queued0) = sched_ms(pid);
    let t0 = Instant::now();
    holder.signal(Signal::SIGTERM).expect("SIGTERM");
    // Observe the exit without reaping, so that its scheduler statistics can still be read.
    assert!(holder.await_exit_unreaped(Duration::from_secs(60)), "{} did not exit after SIGTERM", t.name);
    let wall = ms(t0.elapsed());
    let (cpu1, queued1) = sched_ms(pid);
    let status = holder.wait(DEADLINE).expect("reap");
    if t.gateway {
        assert_eq!(status.code(), Some(spec::exit::OK), "graceful shutdown exits 0");
    }
    drop(conns);
    assert_free(port);
    Shutdown { wall, cpu: cpu1 - cpu0, queued: queued1 - queued0 }
}

/// (resident KiB, threads) of an idle holder with `clients` connected.
fn footprint(t: &Target, port: u16, clients: usize) -> (f64, f64) {
    let holder = t.start(port);
    let _conns = (clients > 0).then(|| t.clients(port, clients));
    let status = std::fs::read_to_string(format!("/proc/{}/status", holder.pid())).unwrap();
    let field = |name: &str| -> f64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in /proc status"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let figures = (field("VmRSS:"), field("Threads:"));
    stop(holder);
    figures
}

impl Target {
    /// `n` clients on a holder of this target: WebSocket ones on the gateway, plain TCP on the baseline.
    fn clients(&self, port: u16, n: usize) -> Clients {
        Clients::connect(port, n, self.gateway, self.protocol.then_some(BENCH_TOKEN))
    }
}

/// Interleaves gateway and baseline runs of one measurement.
fn measure(
    name: &str,
    unit: &'static str,
    runs: usize,
    goal: Option<Goal>,
    targets: &[Target; 2],
    mut f: impl FnMut(&Target) -> f64,
) -> Row {
    let (mut g, mut b) = (Vec::new(), Vec::new());
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runs = if name.contains(only.as_str()) { runs } else { 1 };
    for _ in 0..runs {
        g.push(f(&targets[0]));
        b.push(f(&targets[1]));
    }
    let row = Row { name: name.into(), unit, gateway: stats(g), baseline: stats(b), goal };
    eprintln!("  measured {name}");
    row
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn free_port() -> u16 {
    // Below the ephemeral range, so that no outgoing connection occupies it between runs.
    (20_000..32_000).map(|p| p + (std::process::id() as u16 % 997) * 11).find(|p| net::port_free(*p)).expect("a free port")
}

fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65_536), hard);
    }
}

/// `gateway run --help`, to detect flags that other branches add.
fn run_help(gateway: &Path) -> String {
    Command::new(gateway).args(["run", "--help"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it
    // (debug build, no release baseline): then there is nothing to measure.
    if !std::env::args().any(|a| a == "--bench") {
        println!("bench/benches/lock measures only under `cargo bench` (`just bench`)");
        return;
    }
    raise_nofile();
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(40).max(2);
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let gateway = profile_dir.join("gateway");
    assert!(gateway.exists(), "{} is missing: build it first (`cargo build --release --bin gateway`)", gateway.display());
    let binder = PathBuf::from(env!("CARGO_BIN_EXE_min_binder"));
    // The gateways' state directory, removed at the end.
    let scratch = Scratch::new("gateway-bench").expect("a scratch directory");
    let state = scratch.path().to_path_buf();
    let help = run_help(&gateway);
    let extra: Vec<String> = if help.contains("--max-connections") {
        ["--max-connections", "5000", "--max-unauthenticated", "5000"].map(String::from).to_vec()
    } else {
        Vec::new()
    };
    let mut extra = extra;
    if help.contains("--token") {
        extra.extend(["--token", BENCH_TOKEN].map(String::from));
    }
    let protocol = help.contains("--handshake-timeout-ms");
    let targets = [
        Target { name: "gateway", exe: gateway.clone(), gateway: true, extra, protocol, state: state.clone() },
        Target { name: "min_binder", exe: binder, gateway: false, extra: Vec::new(), protocol: false, state },
    ];
    let port = free_port();
    // The refusal's holder probe reads /proc/net/tcp: its cost grows with the sockets listed there.
    let tcp_sockets = std::fs::read_to_string("/proc/net/tcp").map(|t| t.lines().count().saturating_sub(1)).unwrap_or(0);
    eprintln!("bench: port {port}, {runs} runs per figure, {tcp_sockets} IPv4 TCP sockets on the host, gateway {}", gateway.display());

    let mut rows = Vec::new();
    rows.push(measure("time to lock", "ms", runs, Some(Goal::Ratio(1.5)), &targets, |t| ms(time_to_lock(t, port))));
    // One holder refuses both: the second instance only sees a held port.
    let holder = targets[0].start(port);
    let mut fails: [Vec<(Duration, Duration)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (i, t) in targets.iter().enumerate() {
            fails[i].push(time_to_fail(t, port));
        }
    }
    let pick = |i: usize, f: fn(&(Duration, Duration)) -> Duration| stats(fails[i].iter().map(|x| ms(f(x))).collect());
    rows.push(Row {
        name: "time to fail (exited)".into(),
        unit: "ms",
        gateway: pick(0, |x| x.1),
        baseline: pick(1, |x| x.1),
        goal: Some(Goal::Ratio(1.5)),
    });
    rows.push(Row {
        name: "  refusal line on stderr".into(),
        unit: "ms",
        gateway: pick(0, |x| x.0),
        baseline: pick(1, |x| x.0),
        goal: None,
    });
    eprintln!("  measured time to fail");
    stop(holder);
    rows.push(measure("takeover after SIGKILL (fresh start)", "ms", runs, None, &targets, |t| ms(takeover_fresh(t, port))));
    if help.contains("--wait") {
        let g = stats((0..runs).map(|_| ms(takeover_wait(&targets[0], port))).collect());
        let b = stats((0..runs).map(|_| ms(takeover_fresh(&targets[1], port))).collect());
        rows.push(Row { name: "takeover after SIGKILL (--wait successor)".into(), unit: "ms", gateway: g, baseline: b, goal: None });
    } else {
        eprintln!("  `gateway run --wait` does not exist in this build: its takeover is not measured");
    }
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (clients, n, goal) in [(0, runs, None), (100, runs, None), (1000, (runs / 4).max(2), Some(Goal::Below(50.0)))] {
        let name = format!("graceful shutdown, {clients} clients");
        let n = if name.contains(only.as_str()) { n } else { 1 };
        let mut samples: [Vec<Shutdown>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..n {
            for (i, t) in targets.iter().enumerate() {
                samples[i].push(graceful_shutdown(t, port, clients));
            }
        }
        let figures: [(&str, ShutdownFigure, Option<Goal>); 3] =
            [(&name, |s| s.wall, goal), ("  of which on a CPU", |s| s.cpu, None), ("  of which waiting for a CPU", |s| s.queued, None)];
        for (label, f, goal) in figures {
            let pick = |i: usize| stats(samples[i].iter().map(f).collect());
            rows.push(Row { name: label.to_string(), unit: "ms", gateway: pick(0), baseline: pick(1), goal });
        }
        eprintln!("  measured {name}");
    }
    let (mut rss, mut threads) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    let mut busy = [Vec::new(), Vec::new()];
    for _ in 0..(runs / 4).max(2) {
        for (i, t) in targets.iter().enumerate() {
            let (r, th) = footprint(t, port, 0);
            rss[i].push(r / 1024.0);
            threads[i].push(th);
            busy[i].push(footprint(t, port, 1000).0 / 1024.0);
        }
    }
    let [rg, rb] = rss;
    let [tg, tb] = threads;
    let [bg, bb] = busy;
    rows.push(Row {
        name: "idle resident memory".into(),
        unit: "MiB",
        gateway: stats(rg),
        baseline: stats(rb),
        goal: Some(Goal::Below(8.0)),
    });
    rows.push(Row { name: "idle threads".into(), unit: "", gateway: stats(tg), baseline: stats(tb), goal: None });
    rows.push(Row { name: "resident memory, 1000 clients".into(), unit: "MiB", gateway: stats(bg), baseline: stats(bb), goal: None });
    report(&rows, &profile_dir, runs, tcp_sockets);
}
