//! Test support shared by the integration suites: real `gateway` processes on ephemeral
//! loopback ports, readiness by the ready line (never by sleeping), deadlines everywhere.
#![allow(dead_code)]

pub mod process_model;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Generous upper bound for anything that should happen "at once" (CI has 2 busy cores).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The exact lock messages of `spec/errors.md`.
pub fn held_message(url: &str) -> String {
    format!("GatewayLockError: another gateway instance is already listening on {url}")
}

/// Path of the shipped binary.
pub fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gateway"))
}

/// Path of the test-only helper (`examples/crash_helper.rs`, built by `cargo test`).
pub fn helper_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("examples").join("crash_helper");
    assert!(path.exists(), "{} is missing: build it with `cargo test --all-targets` (or `cargo build --examples`)", path.display());
    path
}

/// A running process that printed `listening on ws://ADDR` on stdout.
pub struct Holder {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
    pub stderr: Option<ChildStderr>,
    /// The process's own HOME, XDG_STATE_HOME and TMPDIR ([`scratch_env`]), removed after it is reaped.
    pub scratch: Option<tempfile::TempDir>,
}

impl Holder {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).expect("signal");
    }
    /// Waits (bounded) for the process to exit.
    pub fn wait(mut self) -> ExitStatus {
        wait_with_deadline(&mut self.child, DEADLINE).expect("holder did not exit before the deadline")
    }
    /// Reads one more stdout line (bounded).
    pub fn read_line(&mut self) -> String {
        read_line_with_deadline(&mut self.stdout, DEADLINE)
    }
    /// Reads all of stderr after exit.
    pub fn take_stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `gateway run` with extra args (add `--port 0` for an ephemeral port) and waits for
/// its ready line.
pub fn start_gateway(args: &[&str]) -> Holder {
    let mut cmd = Command::new(gateway_bin());
    cmd.arg("run").args(args);
    start_and_wait_ready(cmd)
}

/// Starts the test helper in `mode` on 127.0.0.1:`port` and waits for its ready line.
pub fn start_helper(port: u16) -> Holder {
    let mut cmd = Command::new(helper_bin());
    cmd.arg(port.to_string());
    start_and_wait_ready(cmd)
}

/// Spawns `cmd` with piped stdio and waits for `listening on ws://ADDR`.
pub fn start_and_wait_ready(mut cmd: Command) -> Holder {
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).env("GATEWAY_LOG", "warn");
    let scratch = scratch_env(&mut cmd);
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let addr = read_ready_line(&mut stdout);
    Holder { stdin: child.stdin.take(), stderr: child.stderr.take(), child, addr, stdout, scratch: Some(scratch) }
}

/// DOOR-6 (nothing left behind): gives a process started by a test its own scratch directory as
/// `HOME`, `TMPDIR` and `XDG_STATE_HOME` (each unless the test set or removed it), so that a
/// generated token or anything else it writes never lands in the user's home or a shared temporary
/// directory. The directory is removed when the returned value is dropped (after the process is reaped).
pub fn scratch_env(cmd: &mut Command) -> tempfile::TempDir {
    let scratch = tempfile::Builder::new().prefix("gateway-test-").tempdir().expect("scratch directory");
    for var in ["HOME", "TMPDIR", "XDG_STATE_HOME"] {
        if cmd.get_envs().all(|(key, _)| key != var) {
            cmd.env(var, scratch.path());
        }
    }
    scratch
}

/// Reads the ready line `listening on ws://ADDR` (bounded) and returns ADDR.
pub fn read_ready_line(stdout: &mut BufReader<ChildStdout>) -> SocketAddr {
    let line = read_line_with_deadline(stdout, DEADLINE);
    line.trim_end()
        .strip_prefix("listening on ws://")
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
        .parse()
        .expect("address in ready line")
}

/// Reads one line, failing the test if none arrives before `deadline` (an empty string at end of
/// file). Waits with `poll(2)` on the pipe, so a process that never writes cannot hang the test.
pub fn read_line_with_deadline<R: Read + AsFd>(reader: &mut BufReader<R>, deadline: Duration) -> String {
    let end = Instant::now() + deadline;
    let mut line = Vec::new();
    loop {
        let buffered = reader.buffer();
        if let Some(at) = buffered.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buffered[..=at]);
            reader.consume(at + 1);
            break;
        }
        line.extend_from_slice(buffered);
        let taken = buffered.len();
        reader.consume(taken);
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no line before the deadline (so far {:?})", String::from_utf8_lossy(&line));
        let mut fds = [PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(err) => panic!("poll: {err}"),
        }
        // Readable (or hung up): one read, which does not block; empty at end of file.
        if reader.fill_buf().expect("read").is_empty() {
            break;
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Waits for `child` to exit, or returns None at the deadline.
pub fn wait_with_deadline(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= end {
            return None;
        }
        // Polling a child's exit status; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `gateway` with args to completion (bounded); returns (status, stdout, stderr).
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    run_cmd_to_exit(gateway_cmd(args))
}

/// A connected, handshaken blocking WebSocket client.
pub type Ws = tokio_tungstenite::tungstenite::WebSocket<TcpStream>;

/// Opens a WebSocket client to `addr` (bounded by read/write timeouts).
pub fn ws_connect(addr: SocketAddr) -> Ws {
    let stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.set_write_timeout(Some(DEADLINE)).unwrap();
    let (ws, _) = tokio_tungstenite::tungstenite::client(format!("ws://{addr}/"), stream).expect("websocket handshake");
    ws
}

/// Sends a raw HTTP request and returns the whole response (the gateway closes after it).
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> String {
    use std::io::Write;
    let mut stream = TcpStream::connect_timeout(&addr, DEADLINE).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET path` over HTTP/1.1.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    http_raw(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
}

/// Binds the address right now with the gateway's own lock, proving it is free.
pub fn assert_port_free(addr: SocketAddr) {
    gateway_lock::lock::bind(addr).unwrap_or_else(|e| panic!("{addr} should be free: {e}"));
}

// --- issue 6: protocol clients (spec/protocol.md) ---

/// A gateway token for tests.
pub const TEST_TOKEN: &str = "test-token-0123456789";

/// Starts `gateway run --port 0 --token TEST_TOKEN` plus `args`, with a private state directory.
pub fn start_gateway_with_token(args: &[&str]) -> Holder {
    let mut cmd = Command::new(gateway_bin());
    cmd.args(["run", "--port", "0", "--token", TEST_TOKEN]).args(args);
    start_and_wait_ready(cmd)
}

/// The `connect` request frame of the protocol, offering `min..=max`, with `token` if any.
pub fn connect_frame(min: u32, max: u32, token: Option<&str>) -> String {
    let mut params = serde_json::json!({
        "minProtocol": min, "maxProtocol": max,
        "client": {"id": "cli", "version": "test", "platform": "linux", "mode": "cli"},
        "caps": [], "role": "operator", "scopes": ["operator.read"],
    });
    if let Some(token) = token {
        params["auth"] = serde_json::json!({"token": token});
    }
    serde_json::json!({"type": "req", "id": "connect-1", "method": "connect", "params": params}).to_string()
}

/// A request frame.
pub fn request_frame(id: &str, method: &str) -> String {
    serde_json::json!({"type": "req", "id": id, "method": method, "params": {}}).to_string()
}

/// Sends a text frame.
pub fn ws_send(ws: &mut Ws, text: &str) {
    ws.send(tokio_tungstenite::tungstenite::Message::text(text)).expect("send");
}

/// What a client reads next: a JSON text frame, or the close frame's code and reason (the
/// connection's end with no close frame gives code 1006).
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Json(serde_json::Value),
    Close(u16, String),
}

/// Reads the next data frame or close (bounded by the socket's read timeout).
pub fn ws_recv(ws: &mut Ws) -> Received {
    use tokio_tungstenite::tungstenite::{Error, Message};
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => return Received::Json(serde_json::from_str(t.as_str()).expect("JSON frame")),
            Ok(Message::Close(Some(frame))) => return Received::Close(u16::from(frame.code), frame.reason.to_string()),
            Ok(Message::Close(None)) => return Received::Close(1005, String::new()),
            Ok(_) => continue,
            Err(Error::ConnectionClosed | Error::AlreadyClosed) => return Received::Close(1006, String::new()),
            Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                panic!("no frame before the deadline")
            }
            Err(_) => return Received::Close(1006, String::new()),
        }
    }
}

/// Reads the next JSON frame, failing on a close.
pub fn ws_json(ws: &mut Ws) -> serde_json::Value {
    match ws_recv(ws) {
        Received::Json(v) => v,
        other => panic!("expected a JSON frame, got {other:?}"),
    }
}

/// Reads frames until the close; returns the frames before it and (code, reason).
pub fn ws_until_close(ws: &mut Ws) -> (Vec<serde_json::Value>, (u16, String)) {
    let mut frames = Vec::new();
    loop {
        match ws_recv(ws) {
            Received::Json(v) => frames.push(v),
            Received::Close(code, reason) => return (frames, (code, reason)),
        }
    }
}

/// Opens a WebSocket, checks the challenge, sends `connect` with `token` and returns the
/// client with the `hello-ok` response.
pub fn ws_handshake(addr: SocketAddr, token: &str) -> (Ws, serde_json::Value) {
    let mut ws = ws_connect(addr);
    let challenge = ws_json(&mut ws);
    assert_eq!(challenge["event"], "connect.challenge", "{challenge}");
    ws_send(&mut ws, &connect_frame(4, 4, Some(token)));
    let hello = ws_json(&mut ws);
    assert_eq!(hello["ok"], true, "{hello}");
    (ws, hello)
}

/// Calls `method` on a handshaken client and returns the response frame (events before it are skipped).
pub fn ws_call(ws: &mut Ws, id: &str, method: &str) -> serde_json::Value {
    ws_send(ws, &request_frame(id, method));
    loop {
        let frame = ws_json(ws);
        if frame["type"] == "res" && frame["id"] == id {
            return frame;
        }
    }
}
// ---- Operations support (issue 4) ----

/// Runs a prepared `gateway` command to completion (bounded); returns (status, stdout, stderr).
pub fn run_cmd_to_exit(mut cmd: Command) -> (ExitStatus, String, String) {
    cmd.env("GATEWAY_LOG", "warn");
    run_cmd_within(cmd, DEADLINE)
}

/// Runs a prepared command to completion within `deadline` (a test failure after it), draining
/// both pipes while it runs so that a chatty child never blocks on a full pipe.
pub fn run_cmd_within(cmd: Command, deadline: Duration) -> (ExitStatus, String, String) {
    run_with_stdout(cmd, Stdio::piped(), deadline)
}

/// Runs `cmd` to completion (bounded) with a stdout whose reader is already closed (CLI-4): every
/// write to it fails with `EPIPE`. Returns the exit status and stderr.
pub fn run_with_closed_stdout(mut cmd: Command) -> (ExitStatus, String) {
    cmd.env("GATEWAY_LOG", "warn");
    let (status, _, err) = run_with_stdout(cmd, closed_stdout(), DEADLINE);
    (status, err)
}

/// A stdout for a child whose reader is already closed: every write to it fails with `EPIPE`.
pub fn closed_stdout() -> Stdio {
    // Close-on-exec, so that no other child spawned meanwhile inherits (and keeps) the reader.
    let (reader, writer) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
    drop(reader);
    Stdio::from(writer)
}

/// Runs `cmd` with `stdout` to completion within `deadline`, draining whatever pipes it has;
/// returns (status, stdout if piped, stderr).
fn run_with_stdout(mut cmd: Command, stdout: Stdio, deadline: Duration) -> (ExitStatus, String, String) {
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::piped());
    let _scratch = scratch_env(&mut cmd);
    let mut child = cmd.spawn().expect("spawn");
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let Some(status) = wait_with_deadline(&mut child, deadline) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{cmd:?} did not exit before the deadline");
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// A `gateway` command with args.
pub fn gateway_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(gateway_bin());
    cmd.args(args);
    cmd
}

/// A plain listener in the test process (a foreign holder, not a gateway: std's `SO_REUSEADDR`,
/// like most servers). With `answer`, a thread accepts every connection and closes it at once (it
/// "answers" with nothing); without, nothing ever accepts (connections wait in the backlog, like a
/// hung process). Dropping it stops the thread first (woken by a connection of its own), so the
/// socket is really closed.
pub struct ForeignListener {
    pub addr: SocketAddr,
    listener: std::sync::Arc<std::net::TcpListener>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ForeignListener {
    /// On an ephemeral loopback port.
    pub fn start(answer: bool) -> Self {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), answer)
    }

    /// On `addr`, which must be free.
    pub fn bind(addr: SocketAddr, answer: bool) -> Self {
        use std::sync::{atomic::AtomicBool, atomic::Ordering, Arc};
        let listener = Arc::new(std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind foreign listener on {addr}: {e}")));
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = answer.then(|| {
            let (listener, stop) = (Arc::clone(&listener), Arc::clone(&stop));
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    drop(conn);
                }
            })
        });
        ForeignListener { addr, listener, stop, thread }
    }

    /// The listener is still open and listening: a connection is accepted by the kernel.
    pub fn assert_still_listening(&self) {
        TcpStream::connect_timeout(&self.addr, DEADLINE).expect("the foreign listener must still be listening");
        let _ = &self.listener;
    }
}

impl Drop for ForeignListener {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
            let _ = TcpStream::connect_timeout(&self.addr, DEADLINE);
            let _ = thread.join();
        }
    }
}

/// SIGSTOPs a process and SIGCONTs it again when dropped (on every path, panics included).
pub struct StoppedGuard(pub Pid);

impl StoppedGuard {
    pub fn stop(pid: Pid) -> Self {
        kill(pid, Signal::SIGSTOP).expect("SIGSTOP");
        process_model::wait_stopped(pid, true);
        StoppedGuard(pid)
    }
}

impl Drop for StoppedGuard {
    fn drop(&mut self) {
        let _ = kill(self.0, Signal::SIGCONT);
    }
}

/// Reserves a port that nobody listens on: a bound socket that does not listen (connections
/// are refused, so the port looks free, and no other test can take it meanwhile).
pub fn reserved_free_port() -> (socket2::Socket, SocketAddr) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    (socket, addr)
}

/// Parses the JSON body of an HTTP response.
pub fn json_body(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("bad JSON body {body:?}: {e}"))
}

/// A spawned process whose ready line has not been read yet (a waiter).
pub struct Pending {
    pub child: Child,
    pub stdout: Option<BufReader<ChildStdout>>,
    pub stderr: Option<ChildStderr>,
    /// Its own HOME, XDG_STATE_HOME and TMPDIR ([`scratch_env`]), removed after it is reaped.
    pub scratch: tempfile::TempDir,
}

impl Pending {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).env("GATEWAY_LOG", "warn");
        let scratch = scratch_env(&mut cmd);
        let mut child = cmd.spawn().expect("spawn");
        Pending { stdout: Some(BufReader::new(child.stdout.take().unwrap())), stderr: child.stderr.take(), child, scratch }
    }
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
    /// Reads the ready line (bounded) and returns the address it names.
    pub fn read_ready(&mut self) -> SocketAddr {
        read_ready_line(self.stdout.as_mut().unwrap())
    }
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
    pub fn take_stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (bounded) until at least `n` connections to local port `port` are established in the
/// kernel's table (accepted or still in a listener's backlog): the readiness signal of a waiter,
/// which keeps one connection to the holder open.
pub fn wait_for_established(port: u16, n: usize) {
    let end = Instant::now() + DEADLINE;
    loop {
        let mut rows = Vec::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            rows.extend(gateway_lock::probe::parse_proc_net_tcp(&std::fs::read_to_string(table).unwrap_or_default()));
        }
        if rows.iter().filter(|r| r.local.port() == port && r.state == 0x01).count() >= n {
            return;
        }
        assert!(Instant::now() < end, "fewer than {n} connections to port {port} before the deadline");
        // Polling the kernel's table; the deadline bounds it.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The pid a gateway reports in `/healthz`.
pub fn health_pid(addr: SocketAddr) -> i64 {
    json_body(&http_get(addr, "/healthz"))["pid"].as_i64().expect("pid in health body")
}

/// OPS-1's probe after a refusal is bounded (200 ms). On a loaded machine the bound can cut it
/// short, and the output says so ("was not found within", "did not answer GET /healthz within").
/// Runs `make()` to completion until `complete(stderr)` holds, at most 5 times; returns the last run.
pub fn run_refused(make: impl Fn() -> Command, complete: impl Fn(&str) -> bool) -> (ExitStatus, String, String) {
    let mut last = run_cmd_to_exit(make());
    for _ in 0..4 {
        if complete(&last.2) {
            break;
        }
        last = run_cmd_to_exit(make());
    }
    last
}

/// The probe found the holder's process and its answer within the bound.
pub fn probe_complete(stderr: &str) -> bool {
    !stderr.contains("was not found within") && !stderr.contains("did not answer GET /healthz within")
}

/// The probe found the holder's process within the bound (its answer may be missing: a stopped holder).
pub fn process_found(stderr: &str) -> bool {
    !stderr.contains("was not found within")
}

/// Path of the plain binary of `examples/NAME.rs`, built on demand (in the profile of this test):
/// `cargo test --all-targets` builds examples only as test harnesses, so the plain binary may be missing.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let exe = std::env::current_exe().expect("test executable");
    let path = exe.parent().and_then(|deps| deps.parent()).expect("target profile directory").join("examples").join(name);
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "--example", name]).current_dir(env!("CARGO_MANIFEST_DIR"));
    if path.parent().and_then(|p| p.parent()).is_some_and(|p| p.ends_with("release")) {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo build --example");
    assert!(status.success(), "cargo build --example {name} failed");
    path
}

/// LOCK-1: listening sockets on 127.0.0.1:`port` or a wildcard covering it (IPv4 or IPv6), as the
/// kernel lists them (netlink `sock_diag`; reading `/proc/net/tcp` instead walks every connection
/// of the host, which the thousands of `TIME_WAIT` sockets of a long run make slow).
pub fn listeners_on(port: u16) -> usize {
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    let rows = gateway_lock::probe::listening_sockets(port).expect("the kernel's socket table");
    rows.iter().filter(|r| gateway_lock::probe::covers(r.local, wanted)).count()
}
