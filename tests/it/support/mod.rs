//! Test support shared by the integration suites: real `gateway` processes on ephemeral
//! loopback ports, readiness by the ready line (never by sleeping), deadlines everywhere. The
//! process driver, the socket table, the HTTP and WebSocket clients and the spec's messages are the
//! black-box harness's (`harness/`, crate `gateway-harness`); these are the tests' panicking
//! front ends to it.

pub mod examples;
pub mod process_model;
pub mod proptest_config;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use gateway_harness::proc;
use gateway_harness::{net, sockets, ws};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub use examples::example_bin;
pub use gateway_harness::proc::{Proc, Streams};
pub use gateway_harness::ws::{Frame as Received, Ws};

/// Generous upper bound for anything that should happen "at once" (CI has 2 busy cores).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// ERR-1's exact line (`spec/errors.md`), from the harness's copy of the spec.
pub fn held_message(url: &str) -> String {
    gateway_harness::spec::held_message(url)
}

/// A close code and reason of `spec/protocol.md` (`gateway_harness::spec::close`) as a client reads it.
pub fn close_of((code, reason): (u16, &str)) -> (u16, String) {
    (code, reason.to_string())
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

/// A running process that printed `listening on ws://ADDR` on stdout: the harness's [`Proc`]
/// (killed and reaped when dropped), the address, and the process's scratch directory.
pub struct Holder {
    pub proc: Proc,
    pub addr: SocketAddr,
    /// The process's own HOME, XDG_STATE_HOME and TMPDIR ([`scratch_env`]), removed after it is reaped.
    pub scratch: Option<tempfile::TempDir>,
}

impl Holder {
    /// Reads the ready line of `proc` (bounded) and holds it.
    pub fn ready(mut proc: Proc, scratch: Option<tempfile::TempDir>) -> Holder {
        let addr = read_ready(&mut proc);
        Holder { proc, addr, scratch }
    }
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.proc.pid() as i32)
    }
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }
    pub fn signal(&self, sig: Signal) {
        self.proc.signal(sig).expect("signal");
    }
    /// Whether it has exited (reaped if so).
    pub fn exited(&mut self) -> bool {
        self.proc.exited().is_some()
    }
    /// Waits (bounded) for the process to exit.
    pub fn wait(mut self) -> ExitStatus {
        self.proc.wait(DEADLINE).unwrap_or_else(|e| panic!("holder: {e}"))
    }
    /// Reads one more stdout line (bounded).
    pub fn read_line(&mut self) -> String {
        self.proc.read_line(DEADLINE).unwrap_or_else(|e| panic!("{e}"))
    }
    /// Writes `line` and a newline to its stdin.
    pub fn write_line(&mut self, line: &str) {
        writeln!(self.proc.stdin().expect("a piped stdin"), "{line}").expect("write to stdin");
    }
    /// All of stderr (after the exit: until end of file, bounded).
    pub fn take_stderr(&mut self) -> String {
        self.proc.stderr(DEADLINE)
    }
    /// The first line of stderr (bounded), with its newline if it has one.
    pub fn stderr_first_line(&self) -> String {
        let line = self.proc.stderr_first_line(DEADLINE).expect("a line on stderr before the deadline");
        let with_newline = format!("{line}\n");
        if self.proc.stderr_so_far().starts_with(&with_newline) {
            with_newline
        } else {
            line
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.proc.kill();
        // Only once the process is gone: nothing can write into its scratch directory any more.
        drop(self.scratch.take());
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

/// Spawns `cmd` (stdin, stdout and stderr piped) and waits for `listening on ws://ADDR`.
pub fn start_and_wait_ready(cmd: Command) -> Holder {
    let (proc, scratch) = spawn(cmd, Streams { stdin: Stdio::piped(), ..Streams::default() });
    Holder::ready(proc, Some(scratch))
}

/// Spawns `cmd` with `streams` as the harness's [`Proc`] (not in a group of its own: signals go to
/// the process), logging at `warn`, with its own scratch directory ([`scratch_env`]).
pub fn spawn(mut cmd: Command, streams: Streams) -> (Proc, tempfile::TempDir) {
    cmd.env("GATEWAY_LOG", "warn");
    let scratch = scratch_env(&mut cmd);
    (Proc::spawn_with(cmd, streams, false).expect("spawn"), scratch)
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
pub fn read_ready(proc: &mut Proc) -> SocketAddr {
    let line = proc.read_line(DEADLINE).unwrap_or_else(|e| panic!("{e}"));
    gateway_harness::spec::ready_addr(&line).unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
}

/// Runs `gateway` with args to completion (bounded); returns (status, stdout, stderr).
pub fn run_to_exit(args: &[&str]) -> (ExitStatus, String, String) {
    run_cmd_to_exit(gateway_cmd(args))
}

/// Opens a WebSocket client to `addr` (bounded by read/write timeouts).
pub fn ws_connect(addr: SocketAddr) -> Ws {
    ws::open(addr, None, DEADLINE).expect("websocket handshake")
}

/// Sends a raw HTTP request and returns the whole response (the gateway closes after it).
pub fn http_raw(addr: SocketAddr, request: &[u8]) -> String {
    net::http_raw(addr, request, DEADLINE).expect("HTTP exchange")
}

/// `GET path` over HTTP/1.1 (with a `Host` header).
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    http_raw(addr, format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
}

/// Binds the address right now, proving nobody listens there.
pub fn assert_port_free(addr: SocketAddr) {
    std::net::TcpListener::bind(addr).unwrap_or_else(|e| panic!("{addr} should be free: {e}"));
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
    ws::connect_frame(min, max, token, "test")
}

/// A request frame.
pub fn request_frame(id: &str, method: &str) -> String {
    ws::request_frame(id, method)
}

/// Sends a text frame.
pub fn ws_send(ws: &mut Ws, text: &str) {
    ws::send(ws, text).expect("send")
}

/// Reads the next data frame or close (bounded by the socket's read timeout).
pub fn ws_recv(ws: &mut Ws) -> Received {
    ws::recv(ws).unwrap_or_else(|e| panic!("{e}"))
}

/// Reads the next JSON frame, failing on a close.
pub fn ws_json(ws: &mut Ws) -> serde_json::Value {
    ws::json(ws).unwrap_or_else(|e| panic!("expected a JSON frame: {e}"))
}

/// Reads frames until the close; returns the frames before it and (code, reason).
pub fn ws_until_close(ws: &mut Ws) -> (Vec<serde_json::Value>, (u16, String)) {
    ws::until_close(ws).unwrap_or_else(|e| panic!("{e}"))
}

/// Opens a WebSocket, checks the challenge, sends `connect` with `token` and returns the
/// client with the `hello-ok` response.
pub fn ws_handshake(addr: SocketAddr, token: &str) -> (Ws, serde_json::Value) {
    ws::handshake(addr, token, "test", DEADLINE).unwrap_or_else(|e| panic!("{e}"))
}

/// Calls `method` on a handshaken client and returns the response frame (events before it are skipped).
pub fn ws_call(ws: &mut Ws, id: &str, method: &str) -> serde_json::Value {
    ws::call(ws, id, method).unwrap_or_else(|e| panic!("{e}"))
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

/// Runs `cmd` with `stdout` to completion within `deadline` (the harness's [`proc::run`]), with its
/// own scratch directory; returns (status, stdout if piped, stderr).
fn run_with_stdout(mut cmd: Command, stdout: Stdio, deadline: Duration) -> (ExitStatus, String, String) {
    let _scratch = scratch_env(&mut cmd);
    let shown = format!("{cmd:?}");
    let done = proc::run(cmd, Streams { stdout, ..Streams::default() }, deadline).unwrap_or_else(|e| panic!("{shown}: {e}"));
    (done.status, done.stdout, done.stderr)
}

/// A `gateway` command with args.
pub fn gateway_cmd(args: &[&str]) -> Command {
    let mut cmd = Command::new(gateway_bin());
    cmd.args(args);
    cmd
}

/// A plain listener in the test process (a foreign holder): the harness's
/// [`net::ForeignListener`], bound or failing the test. Derefs to it (`.addr`).
pub struct ForeignListener(net::ForeignListener);

impl ForeignListener {
    /// On an ephemeral loopback port.
    pub fn start(answer: bool) -> Self {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), answer)
    }

    /// On `addr`, which must be free.
    pub fn bind(addr: SocketAddr, answer: bool) -> Self {
        ForeignListener(net::ForeignListener::try_bind(addr, answer).unwrap_or_else(|e| panic!("bind foreign listener on {addr}: {e}")))
    }

    /// The listener is still open and listening: a connection is accepted by the kernel.
    pub fn assert_still_listening(&self) {
        assert!(self.0.still_listening(DEADLINE), "the foreign listener must still be listening");
    }
}

impl std::ops::Deref for ForeignListener {
    type Target = net::ForeignListener;
    fn deref(&self) -> &net::ForeignListener {
        &self.0
    }
}

/// SIGSTOPs a process until the returned guard is dropped, which SIGCONTs it again (on every path,
/// panics included): the harness's [`proc::Stopped`].
pub fn stop_until_dropped(pid: Pid) -> proc::Stopped {
    proc::Stopped::stop(pid.as_raw() as u32, DEADLINE).unwrap_or_else(|e| panic!("SIGSTOP: {e}"))
}

/// Reserves a port that nobody listens on: a bound socket that does not listen (connections
/// are refused, so the port looks free, and no other test can take it meanwhile).
pub fn reserved_free_port() -> (socket2::Socket, SocketAddr) {
    net::reserved_free_port().expect("a reserved port")
}

/// Parses the JSON body of an HTTP response.
pub fn json_body(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("bad JSON body {body:?}: {e}"))
}

/// A spawned process whose ready line has not been read yet (a waiter): the harness's [`Proc`],
/// killed and reaped when dropped, then its scratch directory removed.
pub struct Pending {
    pub proc: Proc,
    /// Its own HOME, XDG_STATE_HOME and TMPDIR ([`scratch_env`]), removed after it is reaped.
    pub scratch: Option<tempfile::TempDir>,
}

impl Pending {
    pub fn spawn(cmd: Command) -> Self {
        let (proc, scratch) = spawn(cmd, Streams::default());
        Pending { proc, scratch: Some(scratch) }
    }
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.proc.pid() as i32)
    }
    /// Reads the ready line (bounded) and returns the address it names.
    pub fn read_ready(&mut self) -> SocketAddr {
        read_ready(&mut self.proc)
    }
    pub fn is_running(&mut self) -> bool {
        self.proc.exited().is_none()
    }
    /// All of stderr (after the exit: until end of file, bounded).
    pub fn take_stderr(&mut self) -> String {
        self.proc.stderr(DEADLINE)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.proc.kill();
        // Only once the process is gone: nothing can write into its scratch directory any more.
        drop(self.scratch.take());
    }
}

/// Waits (bounded) until at least `n` connections to local port `port` are established in the
/// kernel's table (accepted or still in a listener's backlog): the readiness signal of a waiter,
/// which keeps one connection to the holder open.
pub fn wait_for_established(port: u16, n: usize) {
    let end = Instant::now() + DEADLINE;
    loop {
        if sockets::established(port) >= n {
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

/// LOCK-1: listening sockets on 127.0.0.1:`port` or a wildcard covering it (IPv4 or IPv6), as the
/// kernel lists them (netlink `sock_diag`; reading `/proc/net/tcp` instead walks every connection
/// of the host, which the thousands of `TIME_WAIT` sockets of a long run make slow).
pub fn listeners_on(port: u16) -> usize {
    sockets::listeners_covering(net::loopback(port)).len()
}
