//! The driver of a verification run: real gateway processes (spawned, signalled, reaped with
//! deadlines), WebSocket clients, and the loop that carries out each cycle's plan and checks the
//! invariants after every step.

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use gateway_lock::ready_line;
use indicatif::ProgressBar;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitid, Id, WaitPidFlag};
use nix::unistd::Pid;
use rand::rngs::StdRng;
use tokio_tungstenite::tungstenite::{self, Message};

use super::schedule::{CyclePlan, Ending, KillSignal, Limits, MidStart};
use super::tally::{check_refusal, Invariant, Tally};
use super::VerifyError;

/// How long anything that should happen "at once" may take before it counts as a hang.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The signal `nix` sends for a [`KillSignal`].
fn nix_signal(signal: KillSignal) -> Signal {
    match signal {
        KillSignal::Kill => Signal::SIGKILL,
        KillSignal::Term => Signal::SIGTERM,
        KillSignal::Int => Signal::SIGINT,
        KillSignal::Abrt => Signal::SIGABRT,
    }
}

/// SIGABRT must not write core files (the kernel's `core` pattern writes into the working
/// directory): children inherit this limit.
pub(super) fn disable_core_dumps() {
    use nix::sys::resource::{setrlimit, Resource};
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
}

/// A private state directory for the gateways started (`XDG_STATE_HOME`, `HOME` and `TMPDIR`,
/// DOOR-6), so that a gateway
/// running on this host under the same user is never disturbed; removed at the end.
pub(super) struct StateDir {
    pub(super) path: PathBuf,
}

impl StateDir {
    pub(super) fn new() -> Self {
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
        self.exited.is_none() && kill(self.pid(), nix_signal(signal)).is_ok()
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

/// The state of a run: what to start, the schedule's RNG, and the counts so far.
pub(super) struct Verifier {
    pub(super) exe: PathBuf,
    pub(super) port: u16,
    pub(super) state_dir: PathBuf,
    pub(super) rng: StdRng,
    pub(super) limits: Limits,
    pub(super) tally: Tally,
    pub(super) cycle: u64,
    pub(super) progress: ProgressBar,
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
        if let Err(err) = gateway_lock::bind(self.addr()) {
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
    pub(super) fn cycle(&mut self) -> Result<(), VerifyError> {
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
