//! Test support shared by the integration suites: real `gateway` processes on ephemeral
//! loopback ports, readiness by the ready line (never by sleeping), deadlines everywhere.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    dir.join("examples").join("crash_helper")
}

/// A running process that printed `listening on ws://ADDR` on stdout.
pub struct Holder {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdin: Option<ChildStdin>,
    pub stdout: BufReader<ChildStdout>,
    pub stderr: Option<ChildStderr>,
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
    let mut child = cmd.spawn().expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let line = read_line_with_deadline(&mut stdout, DEADLINE);
    let addr = line
        .trim_end()
        .strip_prefix("listening on ws://")
        .unwrap_or_else(|| panic!("unexpected ready line {line:?}"))
        .parse()
        .expect("address in ready line");
    Holder { stdin: child.stdin.take(), stderr: child.stderr.take(), child, addr, stdout }
}

/// Reads one line, failing the test if none arrives before `deadline`.
pub fn read_line_with_deadline<R: Read + Send>(reader: &mut BufReader<R>, deadline: Duration) -> String {
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        s.spawn(move || {
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
        });
        rx.recv_timeout(deadline).expect("no line before the deadline")
    })
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
    let mut child = Command::new(gateway_bin())
        .args(args)
        .env("GATEWAY_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let status = wait_with_deadline(&mut child, DEADLINE).expect("gateway did not exit before the deadline");
    let (mut out, mut err) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (status, out, err)
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

/// Path of the plain binary of `examples/NAME.rs`, built on demand (in the profile of this test):
/// `cargo test --all-targets` builds examples only as test harnesses, so the plain binary may be missing.
pub fn example_bin(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let path = helper_bin().with_file_name(name);
    let mut cargo = Command::new(env!("CARGO"));
    cargo.args(["build", "--quiet", "--example", name]).current_dir(env!("CARGO_MANIFEST_DIR"));
    if path.parent().and_then(|p| p.parent()).is_some_and(|p| p.ends_with("release")) {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("run cargo build --example");
    assert!(status.success(), "cargo build --example {name} failed");
    path
}
