//! `just bench`: what the lock costs, measured against the physical limit of this machine.
//!
//! Each figure of the release `gateway` sits beside the same figure of `examples/min_binder.rs`
//! (a std-only program that binds, listens and prints; built in release by `just bench`),
//! measured in the same run, interleaved run by run. Reported: median, p10–p90 and the ratio of
//! medians; the table goes to stdout and a JSON file to `target/bench/lock.json`.
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
//! connection") and on exits with `wait`; no sleeps.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use gateway_harness::sockets;

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
}

impl Target {
    fn command(&self, port: u16) -> Command {
        let mut cmd = Command::new(&self.exe);
        if self.gateway {
            cmd.args(["run", "--port", &port.to_string()]).args(&self.extra).env("GATEWAY_LOG", "warn");
        } else {
            cmd.arg(port.to_string());
        }
        cmd.stdin(Stdio::null());
        if std::env::var_os("BENCH_STDERR").is_none() {
            cmd.stderr(Stdio::null());
        }
        cmd
    }

    /// Spawns a holder and waits for its ready line.
    fn start(&self, port: u16) -> Child {
        let mut child = self.command(port).stdout(Stdio::piped()).spawn().expect("spawn");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(DEADLINE).expect("no ready line before the deadline");
        assert!(line.starts_with("listening on ws://"), "{} printed {line:?}", self.name);
        child
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Polls `connect` until the port accepts (the definition of "holds the port").
fn wait_accepting(port: u16, since: Instant) -> Duration {
    loop {
        if TcpStream::connect(addr(port)).is_ok() {
            return since.elapsed();
        }
        assert!(since.elapsed() < DEADLINE, "port {port} never accepted");
        std::thread::yield_now();
    }
}

/// Polls until the `--wait` successor `waiter` has an established connection (to the holder: it
/// has been refused and now watches it, OPS-4), so the takeover measures the handover, not the
/// successor's start.
fn wait_until_watched(waiter: &Child) {
    let since = Instant::now();
    loop {
        let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
        let rows = sockets::parse_proc_net_tcp(&table);
        if rows.iter().any(|r| r.state == 0x01 && !sockets::fds_on_inode(waiter.id(), r.inode).is_empty()) {
            return;
        }
        assert!(since.elapsed() < DEADLINE, "the --wait successor never watched the holder");
        std::thread::yield_now();
    }
}

fn stop(mut child: Child) {
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let _ = child.wait();
}

fn assert_free(port: u16) {
    gateway_lock::bind(addr(port)).unwrap_or_else(|e| panic!("port {port} should be free: {e}"));
}

fn time_to_lock(t: &Target, port: u16) -> Duration {
    let t0 = Instant::now();
    let child = t.command(port).stdout(Stdio::null()).spawn().expect("spawn");
    let d = wait_accepting(port, t0);
    stop(child);
    d
}

/// (exec → the refusal line on stderr, exec → exited).
fn time_to_fail(t: &Target, port: u16) -> (Duration, Duration) {
    let t0 = Instant::now();
    let mut child = t.command(port).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let _ = stderr.read_line(&mut line);
    let to_line = t0.elapsed();
    assert!(line.starts_with("GatewayLockError: another gateway instance is already listening on"), "{}: {line:?}", t.name);
    // Drain the rest (the holder's description, if any) so that the process never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let status = child.wait().expect("wait");
    let to_exit = t0.elapsed();
    // 3: port held (ERR-1); 5: held by a healthy gateway (the refusal probes the holder first).
    assert!(matches!(status.code(), Some(3) | Some(5)), "{}: the second instance must be refused, got {status}", t.name);
    (to_line, to_exit)
}

fn takeover_fresh(t: &Target, port: u16) -> Duration {
    let mut holder = t.start(port);
    let t0 = Instant::now();
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL).unwrap();
    let _ = holder.wait();
    let child = t.command(port).stdout(Stdio::null()).spawn().expect("spawn");
    let d = wait_accepting(port, t0);
    stop(child);
    d
}

fn takeover_wait(t: &Target, port: u16) -> Duration {
    let mut holder = t.start(port);
    let mut waiter = t.command(port);
    waiter.arg("--wait");
    let waiter = waiter.stdout(Stdio::null()).spawn().expect("spawn");
    wait_until_watched(&waiter);
    let t0 = Instant::now();
    kill(Pid::from_raw(holder.id() as i32), Signal::SIGKILL).unwrap();
    let _ = holder.wait();
    let d = wait_accepting(port, t0);
    stop(waiter);
    d
}

/// Clients kept open on a thread of their own; WebSocket clients answer the close frame.
struct Clients {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Clients {
    fn connect(port: u16, n: usize, websocket: bool, protocol: bool) -> Clients {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let mut tasks = Vec::new();
                let mut raw = Vec::new();
                for _ in 0..n {
                    if websocket {
                        // A small read buffer: tungstenite zero-fills its 128 KiB default before every read,
                        // which would make the clients, not the gateway, the bottleneck.
                        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
                        let (mut ws, _) =
                            tokio_tungstenite::connect_async_with_config(format!("ws://127.0.0.1:{port}/"), Some(config), true)
                                .await
                                .expect("ws connect");
                        if protocol {
                            handshake(&mut ws).await;
                        }
                        tasks.push(tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} }));
                    } else {
                        raw.push(tokio::net::TcpStream::connect(addr(port)).await.expect("tcp connect"));
                    }
                }
                let _ = ready_tx.send(());
                let _ = stop_rx.await;
                for task in tasks {
                    task.abort();
                }
                drop(raw);
            });
        });
        ready_rx.recv_timeout(Duration::from_secs(60)).expect("clients did not connect");
        Clients { stop: Some(stop_tx), thread: Some(thread) }
    }
}

type ClientWs = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The protocol handshake (spec/protocol.md): challenge, `connect`, `hello-ok`.
async fn handshake(ws: &mut ClientWs) {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let connect = serde_json::json!({"type": "req", "id": "c1", "method": "connect", "params": {
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "bench", "platform": "linux", "mode": "cli"},
        "caps": [], "role": "operator", "scopes": ["operator.read"], "auth": {"token": BENCH_TOKEN},
    }});
    let mut sent = false;
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else { continue };
        if !sent && text.contains("connect.challenge") {
            ws.send(Message::text(connect.to_string())).await.expect("send connect");
            sent = true;
        } else if sent && text.contains("hello-ok") {
            return;
        } else if sent && text.contains("\"ok\":false") {
            panic!("handshake refused: {text}");
        }
    }
    panic!("no hello-ok");
}

impl Drop for Clients {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
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

fn graceful_shutdown(t: &Target, port: u16, clients: usize) -> Shutdown {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let mut holder = t.start(port);
    let conns = Clients::connect(port, clients, t.gateway, t.protocol);
    let pid = holder.id();
    let (cpu0, queued0) = sched_ms(pid);
    let t0 = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGTERM).unwrap();
    // Observe the exit without reaping, so that its scheduler statistics can still be read.
    waitid(Id::Pid(Pid::from_raw(pid as i32)), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT).expect("waitid");
    let wall = ms(t0.elapsed());
    let (cpu1, queued1) = sched_ms(pid);
    let status = holder.wait().unwrap();
    if t.gateway {
        assert_eq!(status.code(), Some(0), "graceful shutdown exits 0");
    }
    drop(conns);
    assert_free(port);
    Shutdown { wall, cpu: cpu1 - cpu0, queued: queued1 - queued0 }
}

/// (resident KiB, threads) of an idle holder with `clients` connected.
fn footprint(t: &Target, port: u16, clients: usize) -> (f64, f64) {
    let holder = t.start(port);
    let _conns = (clients > 0).then(|| Clients::connect(port, clients, t.gateway, t.protocol));
    let status = std::fs::read_to_string(format!("/proc/{}/status", holder.id())).unwrap();
    let field = |name: &str| -> f64 {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in /proc status"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let figures = (field("VmRSS:"), field("Threads:"));
    stop(holder);
    figures
}

/// Median and spread of a sample.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    p10: f64,
    p90: f64,
    n: usize,
}

fn stats(mut xs: Vec<f64>) -> Stats {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    Stats { median: at(0.5), p10: at(0.1), p90: at(0.9), n: xs.len() }
}

struct Row {
    name: String,
    unit: &'static str,
    gateway: Stats,
    baseline: Stats,
    goal: Option<Goal>,
}

#[derive(Clone, Copy)]
enum Goal {
    /// Gateway median within this ratio of the baseline median.
    Ratio(f64),
    /// Gateway median below this absolute value (in the row's unit).
    Below(f64),
}

impl Row {
    /// Ratio of the medians; None when the baseline's median is 0.
    fn ratio(&self) -> Option<f64> {
        (self.baseline.median > 0.0).then(|| self.gateway.median / self.baseline.median)
    }
    fn met(&self) -> Option<bool> {
        self.goal.map(|g| match g {
            Goal::Ratio(r) => self.ratio().is_some_and(|x| x <= r),
            Goal::Below(x) => self.gateway.median < x,
        })
    }
    fn goal_text(&self) -> String {
        match self.goal {
            Some(Goal::Ratio(r)) => format!("≤ {r}x"),
            Some(Goal::Below(x)) => format!("< {x} {}", self.unit),
            None => "-".into(),
        }
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
    let listener = (20_000..32_000)
        .map(|p| p + (std::process::id() as u16 % 997) * 11)
        .find_map(|p| gateway_lock::bind(addr(p)).ok())
        .expect("a free port");
    listener.local_addr().unwrap().port()
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
        println!("benches/lock.rs measures only under `cargo bench` (`just bench`)");
        return;
    }
    raise_nofile();
    // DOOR-6 (nothing left behind): every process started here gets a scratch HOME, XDG_STATE_HOME
    // and TMPDIR, removed at the end.
    let scratch = tempfile::Builder::new().prefix("gateway-bench-").tempdir().expect("scratch directory");
    for var in ["HOME", "XDG_STATE_HOME", "TMPDIR"] {
        std::env::set_var(var, scratch.path());
    }
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(40).max(2);
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_path_buf();
    let gateway = PathBuf::from(env!("CARGO_BIN_EXE_gateway"));
    let binder = profile_dir.join("examples").join("min_binder");
    assert!(binder.exists(), "{} is missing: build it first (`cargo build --release --example min_binder`)", binder.display());
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
        Target { name: "gateway", exe: gateway.clone(), gateway: true, extra, protocol },
        Target { name: "min_binder", exe: binder, gateway: false, extra: Vec::new(), protocol: false },
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
        let pick = |i: usize, f: fn(&Shutdown) -> f64| stats(samples[i].iter().map(f).collect());
        rows.push(Row { name: name.clone(), unit: "ms", gateway: pick(0, |s| s.wall), baseline: pick(1, |s| s.wall), goal });
        rows.push(Row {
            name: "  of which on a CPU".to_string(),
            unit: "ms",
            gateway: pick(0, |s| s.cpu),
            baseline: pick(1, |s| s.cpu),
            goal: None,
        });
        rows.push(Row {
            name: "  of which waiting for a CPU".to_string(),
            unit: "ms",
            gateway: pick(0, |s| s.queued),
            baseline: pick(1, |s| s.queued),
            goal: None,
        });
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

fn report(rows: &[Row], profile_dir: &Path, runs: usize, tcp_sockets: usize) {
    let fmt = |s: &Stats| format!("{:.2} ({:.2}–{:.2})", s.median, s.p10, s.p90);
    println!();
    println!("{:<42} {:>26} {:>26} {:>7} {:>10} {:>5}", "figure (median, p10–p90)", "gateway", "min_binder", "ratio", "goal", "met");
    for row in rows {
        let met = match row.met() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "",
        };
        let name = if row.unit.is_empty() { row.name.clone() } else { format!("{} [{}]", row.name, row.unit) };
        let ratio = row.ratio().map_or("-".to_string(), |r| format!("{r:.2}x"));
        println!("{:<42} {:>26} {:>26} {:>7} {:>10} {:>5}", name, fmt(&row.gateway), fmt(&row.baseline), ratio, row.goal_text(), met);
    }
    let json = serde_json::json!({
        "runs": runs,
        "tcpSocketsAtStart": tcp_sockets,
        "loadAverage": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "figures": rows.iter().map(|r| serde_json::json!({
            "name": r.name,
            "unit": r.unit,
            "gateway": {"median": r.gateway.median, "p10": r.gateway.p10, "p90": r.gateway.p90, "n": r.gateway.n},
            "baseline": {"median": r.baseline.median, "p10": r.baseline.p10, "p90": r.baseline.p90, "n": r.baseline.n},
            "ratio": r.ratio(),
            "goal": r.goal_text(),
            "met": r.met(),
        })).collect::<Vec<_>>(),
    });
    let dir = profile_dir.parent().unwrap().join("bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("lock.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    println!("\nwritten to {}", path.display());
}
