//! Black-box conformance runner: checks any implementation of the gateway lock against `spec/`
//! through its command line only, and prints one row per invariant ID: pass, fail or n/a, and why.
//!
//! ```text
//! conformance ['<command template>']   # default: '<the gateway beside this binary>' run --token conformance --host {host} --port {port}
//! just conformance 'node port.js --port {port}'
//! ```
//! The template is run by `sh -c 'exec <template>'` in its own process group, with `{port}`
//! replaced by a free loopback port, and `{host}`, if present, by the host (`127.0.0.1`, and
//! `localhost` and `192.0.2.1` for LOCK-4 and ERR-2); without `{host}` the implementation must
//! listen on 127.0.0.1 by default and those two rows are n/a. Signals go to the process group. Exit
//! status: 0 when no row failed, 1 otherwise, 2 on bad usage. See `spec/README.md`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use socket2::{Domain, Socket, Type};
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode, Message, WebSocket};

/// Upper bound for anything that should happen "at once" (a busy CI machine).
const DEADLINE: Duration = Duration::from_secs(10);
/// Contenders started at once in the race scenario.
const BURST: usize = 4;

/// The outcome of one invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    Pass,
    NotApplicable,
    Fail,
}

/// A check's result: `Err(why)` fails the invariant.
type Check = Result<String, String>;

/// The table being filled: per invariant, the worst verdict and every reason.
#[derive(Default)]
struct Report {
    rows: BTreeMap<String, Vec<(Verdict, String)>>,
}

impl Report {
    fn record(&mut self, id: &str, verdict: Verdict, why: impl Into<String>) {
        self.rows.entry(id.to_string()).or_default().push((verdict, why.into()));
    }
    fn check(&mut self, id: &str, result: &Check) {
        match result {
            Ok(why) => self.record(id, Verdict::Pass, why.clone()),
            Err(why) => self.record(id, Verdict::Fail, why.clone()),
        }
    }
}

/// How to start the implementation under test.
struct Subject {
    template: String,
    /// `XDG_STATE_HOME` of every started process: a scratch directory, never the user's own.
    state: PathBuf,
}

/// A started process (its own process group); killed with its group when dropped.
struct Proc {
    child: Child,
    stdout: Option<BufReader<ChildStdout>>,
    stderr: Option<ChildStderr>,
}

impl Proc {
    fn signal(&self, sig: Signal) {
        let _ = killpg(Pid::from_raw(self.child.id() as i32), sig);
    }
    /// The first stdout line (bounded); empty if stdout closed without one.
    fn first_line(&mut self) -> Result<String, String> {
        let mut stdout = self.stdout.take().ok_or("stdout already read")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = tx.send((line, stdout));
        });
        let (line, stdout) = rx.recv_timeout(DEADLINE).map_err(|_| format!("no stdout line within {DEADLINE:?}"))?;
        self.stdout = Some(stdout);
        Ok(line)
    }
    /// Waits (bounded) for the exit.
    fn wait(&mut self) -> Result<ExitStatus, String> {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() >= end {
                return Err(format!("did not exit within {DEADLINE:?}"));
            }
            // Polling an exit status; the deadline bounds it.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    /// The rest of stdout and all of stderr, after exit.
    fn output(&mut self) -> (String, String) {
        let (mut out, mut err) = (String::new(), String::new());
        if let Some(mut s) = self.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = self.stderr.take() {
            let _ = s.read_to_string(&mut err);
        }
        (out, err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(Signal::SIGCONT);
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Subject {
    fn spawn(&self, port: &str) -> Proc {
        self.spawn_on("127.0.0.1", port)
    }

    /// Whether the template takes a host (`{host}`): then LOCK-4 and ERR-2 are checked too.
    fn takes_host(&self) -> bool {
        self.template.contains("{host}")
    }

    fn spawn_on(&self, host: &str, port: &str) -> Proc {
        let command = self.template.replace("{port}", port).replace("{host}", host);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .process_group(0)
            .env("XDG_STATE_HOME", &self.state)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
        let (stdout, stderr) = (child.stdout.take().map(BufReader::new), child.stderr.take());
        Proc { child, stdout, stderr }
    }

    /// Starts a holder on `port` and checks its ready line (CLI-1).
    fn start(&self, port: u16) -> Result<Proc, String> {
        let mut proc = self.spawn(&port.to_string());
        let line = proc.first_line()?;
        let want = format!("listening on ws://127.0.0.1:{port}\n");
        if line == want {
            Ok(proc)
        } else {
            let status = proc.wait().map(|s| format!("{s}")).unwrap_or_else(|e| e);
            let (_, err) = proc.output();
            Err(format!("ready line {line:?}, want {want:?} ({status}; stderr {:?})", first_line(&err)))
        }
    }

    /// Starts an instance that must be refused with ERR-1 (exit 3, or 5 when the holder is a
    /// healthy gateway); checks stdout is empty (LOCK-3).
    fn refused(&self, port: u16, allow_healthy: bool) -> Check {
        let mut proc = self.spawn(&port.to_string());
        refusal(&mut proc, port, allow_healthy)
    }
}

/// Checks a started contender is refused with ERR-1.
fn refusal(proc: &mut Proc, port: u16, allow_healthy: bool) -> Check {
    let line = proc.first_line()?;
    if !line.is_empty() {
        return Err(format!("started although the port was held: stdout {line:?}"));
    }
    let status = proc.wait()?;
    let (out, err) = proc.output();
    let want = format!("GatewayLockError: another gateway instance is already listening on ws://127.0.0.1:{port}");
    if first_line(&err) != want {
        return Err(format!("first stderr line {:?}, want {want:?}", first_line(&err)));
    }
    match status.code() {
        Some(3) => {}
        Some(5) if allow_healthy => {}
        code => return Err(format!("exit code {code:?}, want 3{}", if allow_healthy { " (or 5)" } else { "" })),
    }
    if !out.is_empty() {
        return Err(format!("stdout not empty: {out:?}"));
    }
    Ok(format!("refused: exit {}, exact message, empty stdout", status.code().unwrap_or(-1)))
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// A port that is free right now (the OS picks it).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// True if the port can be bound exclusively right now (nobody holds it).
fn port_free(port: u16) -> bool {
    TcpListener::bind(loopback(port)).is_ok()
}

fn ws_connect(port: u16) -> Result<WebSocket<TcpStream>, String> {
    let stream = TcpStream::connect_timeout(&loopback(port), DEADLINE).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(DEADLINE)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(DEADLINE)).map_err(|e| e.to_string())?;
    let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/"), stream).map_err(|e| format!("WebSocket handshake: {e}"))?;
    Ok(ws)
}

/// Reads until the close frame; checks it is 1012 "service restart". Replies if `answer`.
fn expect_close_1012(ws: &mut WebSocket<TcpStream>, answer: bool) -> Check {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(frame))) => {
                if answer {
                    let _ = ws.flush();
                }
                return if frame.code == CloseCode::from(1012) && frame.reason == "service restart" {
                    Ok("close 1012 \"service restart\"".into())
                } else {
                    Err(format!("close frame {} {:?}, want 1012 \"service restart\"", u16::from(frame.code), frame.reason.as_str()))
                };
            }
            Ok(Message::Close(None)) => return Err("close frame without a code".into()),
            Ok(_) => {}
            Err(e) => return Err(format!("no close frame: {e}")),
        }
    }
}

fn http(port: u16, request: &[u8]) -> Result<String, String> {
    let mut stream = TcpStream::connect_timeout(&loopback(port), DEADLINE).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(DEADLINE)).map_err(|e| e.to_string())?;
    stream.write_all(request).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Runs every scenario, filling the report.
fn run_scenarios(subject: &Subject, report: &mut Report) {
    // CLI-1, LOCK-1, ERR-1, LOCK-3, SRV-1, SRV-3: a holder, a second instance, HTTP on the port.
    let port = free_port();
    let holder = match subject.start(port) {
        Ok(holder) => holder,
        Err(why) => {
            report.record("CLI-1", Verdict::Fail, why.clone());
            report.record("LOCK-1", Verdict::Fail, format!("could not start a holder: {why}"));
            return;
        }
    };
    report.record("CLI-1", Verdict::Pass, "ready line `listening on ws://127.0.0.1:<port>` on stdout");
    let second = subject.refused(port, true);
    report.check("LOCK-1", &second);
    report.check("ERR-1", &second);
    report.check("LOCK-3", &second.as_ref().map(|_| "refusal printed nothing on stdout".to_string()).map_err(Clone::clone));
    let still = match TcpStream::connect_timeout(&loopback(port), DEADLINE) {
        Ok(_) => Ok("the first instance still accepts".to_string()),
        Err(e) => Err(format!("the first instance stopped accepting after the refusal: {e}")),
    };
    report.check("LOCK-1", &still);
    let health = http(port, format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes()).and_then(|r| {
        let body = r.split("\r\n\r\n").nth(1).unwrap_or("");
        let json: serde_json::Value = serde_json::from_str(body).map_err(|e| format!("health body {body:?}: {e}"))?;
        let ok = r.starts_with("HTTP/1.1 200 ") && json["ok"] == true && json["status"] == "live" && json["port"] == port;
        if ok {
            Ok(format!("200 {body}"))
        } else {
            Err(format!("health answer {r:?}"))
        }
    });
    report.check("SRV-1", &health);
    let bad = http(port, b"\x00\x01garbage\r\n\r\n").and_then(|r| {
        if r.starts_with("HTTP/1.1 400 ") {
            Ok("malformed head: 400".to_string())
        } else {
            Err(format!("malformed head answered {:?}", first_line(&r)))
        }
    });
    report.check("SRV-3", &bad);
    let after = http(port, b"GET /healthz HTTP/1.1\r\n\r\n").and_then(|r| {
        if r.starts_with("HTTP/1.1 200 ") {
            Ok("still serving".into())
        } else {
            Err(format!("after bad input: {r:?}"))
        }
    });
    report.check("SRV-3", &after);
    drop(holder);

    // LOCK-2: a foreign (non-gateway) listener gives the same refusal, exit 3.
    let port = free_port();
    let foreign = TcpListener::bind(loopback(port)).expect("foreign listener");
    let refused = subject.refused(port, false);
    report.check("LOCK-2", &refused);
    report.check("ERR-1", &refused);
    drop(foreign);

    // LOCK-5: a listener with SO_REUSEPORT holds the port; an implementation that set
    // SO_REUSEPORT itself would share it instead of being refused.
    let port = free_port();
    let reuse = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    reuse.set_reuse_port(true).expect("SO_REUSEPORT");
    reuse.bind(&loopback(port).into()).expect("bind");
    reuse.listen(16).expect("listen");
    report.check("LOCK-5", &subject.refused(port, false));
    drop(reuse);

    // LOCK-6: a burst of contenders on a free port: exactly one wins.
    let port = free_port();
    let mut contenders: Vec<Proc> = (0..BURST).map(|_| subject.spawn(&port.to_string())).collect();
    let mut winners = 0;
    let mut problems = Vec::new();
    let want = format!("listening on ws://127.0.0.1:{port}\n");
    for c in &mut contenders {
        match c.first_line() {
            Ok(line) if line == want => winners += 1,
            Ok(line) if line.is_empty() => {
                if let Err(why) = refusal(c, port, true) {
                    problems.push(why);
                }
            }
            Ok(line) => problems.push(format!("unexpected stdout {line:?}")),
            Err(why) => problems.push(why),
        }
    }
    let race = if winners == 1 && problems.is_empty() {
        Ok(format!("{BURST} at once: 1 ready, {} refused with ERR-1", BURST - 1))
    } else {
        Err(format!("{BURST} at once: {winners} ready; {problems:?}"))
    };
    report.check("LOCK-6", &race);
    drop(contenders);

    // REL-1, REL-2: SIGKILL a holder with a WebSocket client; a successor binds at once.
    let port = free_port();
    let result = (|| {
        let mut holder = subject.start(port)?;
        let client = ws_connect(port)?;
        holder.signal(Signal::SIGKILL);
        holder.wait()?;
        let successor = subject.start(port).map_err(|e| format!("no successor after SIGKILL: {e}"))?;
        drop((client, successor));
        Ok("after SIGKILL with a client connected, a successor started at once".to_string())
    })();
    report.check("REL-1", &result);
    report.check("REL-2", &result);
    report.check("SRV-2", &result.as_ref().map(|_| "WebSocket upgrade on / accepted".to_string()).map_err(Clone::clone));

    // SHUT-1, REL-1: each shutdown signal closes clients with 1012, exit 0, port free.
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        let port = free_port();
        let result = (|| {
            let mut holder = subject.start(port)?;
            let mut client = ws_connect(port)?;
            holder.signal(sig);
            let close = expect_close_1012(&mut client, true)?;
            let status = holder.wait()?;
            if status.code() != Some(0) {
                return Err(format!("{sig}: exit {status}, want 0"));
            }
            if !port_free(port) {
                return Err(format!("{sig}: port still held after exit"));
            }
            Ok(format!("{sig}: {close}, exit 0, port free"))
        })();
        report.check("SHUT-1", &result);
        report.check("REL-1", &result);
    }

    // REL-4, SHUT-2: a client that never answers the close frame: the port stays held while
    // draining, and is released (exit 0) within the grace period's bound.
    let port = free_port();
    let result = (|| {
        let mut holder = subject.start(port)?;
        let mut client = ws_connect(port)?;
        holder.signal(Signal::SIGTERM);
        let start = Instant::now();
        expect_close_1012(&mut client, false)?;
        let held_while_draining = !port_free(port);
        let status = holder.wait()?;
        let took = start.elapsed();
        drop(client);
        if status.code() != Some(0) {
            return Err(format!("exit {status}, want 0"));
        }
        Ok((held_while_draining, took, port_free(port)))
    })();
    match result {
        Ok((held, took, free)) => {
            let rel4 = if held && free {
                Ok("port held while draining a silent client, free after exit".to_string())
            } else {
                Err(format!("held while draining: {held}, free after exit: {free}"))
            };
            report.check("REL-4", &rel4);
            report.check("SHUT-2", &Ok(format!("a silent client did not block shutdown (exit 0 after {took:.2?})")));
        }
        Err(why) => {
            report.record("REL-4", Verdict::Fail, why.clone());
            report.record("SHUT-2", Verdict::Fail, why);
        }
    }

    // SHUT-3: two signals at once: still one graceful shutdown, exit 0.
    let port = free_port();
    let result = (|| {
        let mut holder = subject.start(port)?;
        holder.signal(Signal::SIGTERM);
        holder.signal(Signal::SIGINT);
        let status = holder.wait()?;
        if status.code() != Some(0) {
            return Err(format!("SIGTERM+SIGINT: exit {status}, want 0"));
        }
        Ok("SIGTERM and SIGINT at once: exit 0".to_string())
    })();
    report.check("SHUT-3", &result);

    // CLI-2: bad port values are usage errors (exit 2), nothing on stdout.
    for bad in ["abc", "65536", "-1"] {
        let mut proc = subject.spawn(bad);
        let result = proc.wait().and_then(|status| {
            let (out, err) = proc.output();
            if status.code() == Some(2) && out.is_empty() && !err.trim().is_empty() {
                Ok(format!("port {bad:?}: exit 2, {:?}", first_line(&err)))
            } else {
                Err(format!("port {bad:?}: {status}, stdout {out:?}, stderr {:?}", first_line(&err)))
            }
        });
        report.check("CLI-2", &result);
    }
}

/// LOCK-4, ERR-2: only when the template takes `{host}`.
fn run_host_scenarios(subject: &Subject, report: &mut Report) {
    // ERR-2: an address not on this host (TEST-NET-1, only bound, never connected to).
    let port = free_port();
    let mut proc = subject.spawn_on("192.0.2.1", &port.to_string());
    let result = proc.wait().and_then(|status| {
        let (out, err) = proc.output();
        let want = format!("GatewayLockError: failed to bind gateway socket on ws://192.0.2.1:{port}: ");
        if status.code() == Some(4) && out.is_empty() && first_line(&err).starts_with(&want) {
            Ok(format!("exit 4, {:?}", first_line(&err)))
        } else {
            Err(format!("{status}, stdout {out:?}, stderr {:?}, want {want:?}...", first_line(&err)))
        }
    });
    report.check("ERR-2", &result);

    // LOCK-4: `localhost` is 127.0.0.1 only: the ready line says so and [::1] stays untouched.
    let port = free_port();
    let mut proc = subject.spawn_on("localhost", &port.to_string());
    let result = proc.first_line().and_then(|line| {
        let want = format!("listening on ws://127.0.0.1:{port}\n");
        if line != want {
            return Err(format!("--host localhost: ready line {line:?}, want {want:?}"));
        }
        match TcpListener::bind(SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port))) {
            Ok(_) => Ok("localhost bound 127.0.0.1 only ([::1] stayed free)".to_string()),
            // No IPv6 loopback here: the ready line is all that can be checked.
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Ok("localhost bound 127.0.0.1 (no ::1 here)".to_string()),
            Err(e) => Err(format!("--host localhost also holds [::1]:{port}: {e}")),
        }
    });
    report.check("LOCK-4", &result);
}

/// Why each invariant that no scenario checks is not applicable from the outside.
fn not_applicable(id: &str) -> &'static str {
    match id {
        "LOCK-4" | "ERR-2" => "the template has no {host}",
        "CLI-3" => "needs the environment, not only a command template",
        "REL-3" => "needs the implementation to spawn a child; check close-on-exec in the port's own tests",
        id if id.starts_with("LIFE-") => "in-process state machine; check with the port's own model tests",
        id if id.starts_with("FUZZ-") => "in-process parsers; fuzz the port's own parsers",
        _ => "no black-box scenario for it",
    }
}

/// Invariant IDs from `spec/invariants.md` headings (`### LOCK-1 — ...`) and the ERR list.
fn spec_ids() -> Vec<String> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("spec/invariants.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut ids = Vec::new();
    for line in text.lines() {
        let head = line.strip_prefix("### ").or_else(|| line.strip_prefix("- ")).unwrap_or("");
        let id: String = head.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let is_id = id.contains('-') && id.split('-').next().is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_uppercase()));
        if is_id && id.rsplit('-').next().is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty()) && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

fn default_template() -> String {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/examples/conformance -> target/<profile>/gateway
    let gateway = exe.parent().and_then(|p| p.parent()).map(|p| p.join("gateway")).filter(|p| p.exists());
    let gateway = gateway.unwrap_or_else(|| PathBuf::from("target/debug/gateway"));
    // A token: `192.0.2.1` (ERR-2's scenario) is not loopback, and binding it without one is refused
    // before the bind (DOOR-2, exit 7).
    format!("'{}' run --token conformance --host {{host}} --port {{port}}", gateway.display())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 1 || args.first().is_some_and(|a| a == "-h" || a == "--help") {
        eprintln!("usage: conformance ['<command template with {{port}}>']");
        std::process::exit(2);
    }
    let template = args.into_iter().next().filter(|t| !t.trim().is_empty()).unwrap_or_else(default_template);
    if !template.contains("{port}") {
        eprintln!("conformance: the template must contain {{port}}: {template:?}");
        std::process::exit(2);
    }
    println!("conformance of: {template}\n");
    let state = std::env::temp_dir().join(format!("gateway-conformance-{}", std::process::id()));
    let subject = Subject { template, state };
    let mut report = Report::default();
    run_scenarios(&subject, &mut report);
    if subject.takes_host() {
        run_host_scenarios(&subject, &mut report);
    }

    let mut ids = spec_ids();
    for id in report.rows.keys() {
        if !ids.contains(id) {
            ids.push(id.clone());
        }
    }
    println!("| invariant | result | why |\n|---|---|---|");
    let (mut passed, mut failed, mut na) = (0, 0, 0);
    for id in &ids {
        let (verdict, why) = match report.rows.get(id) {
            Some(results) => {
                // The worst verdict, with the reasons for it (a failure shows only its failures).
                let verdict = results.iter().map(|(v, _)| *v).max().unwrap_or(Verdict::NotApplicable);
                let why: Vec<String> = results.iter().filter(|(v, _)| *v == verdict).map(|(_, w)| w.replace('|', "\\|")).collect();
                (verdict, why.join("; "))
            }
            None => (Verdict::NotApplicable, not_applicable(id).to_string()),
        };
        let word = match verdict {
            Verdict::Pass => {
                passed += 1;
                "pass"
            }
            Verdict::Fail => {
                failed += 1;
                "FAIL"
            }
            Verdict::NotApplicable => {
                na += 1;
                "n/a"
            }
        };
        println!("| {id} | {word} | {why} |");
    }
    let _ = std::fs::remove_dir_all(&subject.state);
    println!("\n(n/a rows are counted as skipped)\nconformance: {passed} passed, {failed} failed, {na} skipped");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}
