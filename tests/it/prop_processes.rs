//! A proptest state machine over real `gateway` processes, real ports and real signals.
//!
//! The reference model ([`Model`]) says which instance holds which port, what it is (a gateway,
//! or the test helper `examples/crash_helper` that takes the lock with the library and can spawn
//! children and crash) and whether it is alive, stopped (`SIGSTOP`) or gone. Random sequences of
//! operations ([`Op`]: start one instance, start a burst of contenders at once, start a helper,
//! let it spawn a long-lived child, make it panic or abort, send `SIGKILL`/`SIGTERM`/`SIGINT`/
//! `SIGSTOP`/`SIGCONT`, connect or disconnect a WebSocket client, open or close a foreign
//! listener that answers or stays silent, run `gateway status`, start on the wildcard address
//! without a token) drive both, and after every step
//! the real system is checked against the model:
//!
//! - LOCK-1: at most one listener per port (read from `/proc/net/tcp`), and exactly one while the
//!   model says the port is held, by the instance the model names (its `/healthz` pid);
//! - LOCK-1, ERR-1, LOCK-3: a start fails iff a live or stopped instance holds the port, with the
//!   exact message as the first stderr line and nothing on stdout;
//! - OPS-1: the refusal then names the holder's pid (the model's instance, or this test process for
//!   a foreign listener) and says what it is; exit 5 iff a live gateway holds the port, else 3 (a
//!   probe cut short by its 200 ms bound must say so, and then exits 3);
//! - LOCK-2: a port held by a foreign listener (the test's own) refuses the same way, exit 3;
//! - LOCK-6: among k simultaneous contenders on a free port exactly one wins;
//! - REL-1, REL-2: after the holder dies (any signal, panic, abort, with clients connected) a fresh
//!   start succeeds;
//! - REL-3: a helper's long-lived child does not keep the port once the helper is gone;
//! - SHUT-1, SHUT-3: `SIGTERM`/`SIGINT` close every client with 1012 and exit 0 (also when the
//!   signal was sent while stopped and is delivered on `SIGCONT`);
//! - OPS-2, CLI-4: `gateway status` (its stdout read, or closed before it writes) reports `free` (3), `gateway` with the holder's pid (0), `foreign` (4)
//!   or `not-answering` (5) exactly as the model's holder predicts;
//! - OPS-7: every gateway gets its own `NOTIFY_SOCKET`: `READY=1` iff it won the port, nothing on a
//!   refusal, `STOPPING=1` before a graceful exit;
//! - DOOR-2: `--host 0.0.0.0` without a token exits 7 before the bind, free port or held, and
//!   leaves no listener.
//!
//! Shrinking prints a minimal sequence of [`Op`]s. `PROPTEST_CASES` raises the case count
//! (default [`DEFAULT_CASES`], sized for CI on 2 busy cores). Every process is continued and
//! killed when a case ends, pass or fail ([`System`]'s `Drop`).
#![cfg(target_os = "linux")]

use gateway_harness::spec;
use std::collections::HashMap;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::process_model::{case_dir, free_ports, wait_stopped, Life, Sig};
use crate::support::proptest_config::config;
use crate::support::{
    gateway_bin, held_message, helper_bin, http_get, listeners_on, run_cmd_to_exit, run_with_closed_stdout, ws_connect, ForeignListener,
    Proc, Streams, Ws, DEADLINE,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Cases run by default; `PROPTEST_CASES` overrides.
const DEFAULT_CASES: u32 = 32;
/// Most WebSocket clients one instance gets in a case.
const MAX_CLIENTS: usize = 3;
/// Most children one helper spawns in a case.
const MAX_CHILDREN: usize = 2;

/// How an [`Op::Crash`] ends a helper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    /// `panic!` (the helper is built with unwinding: exit code 101).
    Panic,
    /// `std::process::abort` (`SIGABRT`).
    Abort,
}

/// One step. `port` is an index into the case's ports; `inst` the n-th instance that started.
#[derive(Debug, Clone)]
enum Op {
    /// `gateway run --port P`.
    Start { port: usize },
    /// `k` instances of `gateway run --port P` spawned at once.
    Burst { port: usize, k: usize },
    /// `crash_helper P` on free port P: takes the lock with the library, serves nothing.
    Helper { port: usize },
    /// Helper `inst` starts a long-lived child (`sleep`) that inherits whatever it can.
    Spawn { inst: usize },
    /// Helper `inst` panics or aborts.
    Crash { inst: usize, how: Crash },
    /// A signal to instance `inst`.
    Signal { inst: usize, sig: Sig },
    /// A new WebSocket client of gateway `inst`.
    Connect { inst: usize },
    /// Gateway `inst`'s oldest client closes.
    Disconnect { inst: usize },
    /// The test itself (not a gateway) listens on free port P; with `answers`, it accepts every
    /// connection and closes it (a foreign server), else it never accepts (a hung one).
    Foreign { port: usize, answers: bool },
    /// The test's own listener on P closes.
    ForeignClose { port: usize },
    /// `gateway status --port P`, its stdout read, or closed before it writes (CLI-4).
    Status { port: usize, closed_stdout: bool },
    /// `gateway run --host 0.0.0.0 --port P` without a token: refused before the bind (DOOR-2).
    NoAuth { port: usize },
}

/// What an instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gateway,
    /// `examples/crash_helper`: holds the lock, never answers on it.
    Helper,
}

#[derive(Debug, Clone)]
struct Inst {
    port: usize,
    kind: Kind,
    life: Life,
    clients: usize,
    children: usize,
}

/// The reference model.
#[derive(Debug, Clone)]
struct Model {
    ports: usize,
    instances: Vec<Inst>,
    /// Ports held by a foreign (non-gateway) listener of the test: `Some(answers)`.
    foreign: Vec<Option<bool>>,
}

/// Who holds a port, as far as a prober can tell (OPS-1, OPS-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holding {
    Free,
    /// A gateway that answers `/healthz`.
    LiveGateway(usize),
    /// A stopped gateway, or a helper (alive or stopped): accepted by the kernel, never answered.
    Silent(usize),
    /// The test's own listener; `answers` as in [`Op::Foreign`].
    Foreign {
        answers: bool,
    },
}

impl Model {
    /// The instance holding `port` (alive or stopped), if any.
    fn holder(&self, port: usize) -> Option<usize> {
        self.instances.iter().position(|i| i.port == port && i.life != Life::Gone)
    }
    /// Whether anything (an instance, alive or stopped, or a foreign listener) holds `port`.
    fn held(&self, port: usize) -> bool {
        self.foreign[port].is_some() || self.holder(port).is_some()
    }
    fn holding(&self, port: usize) -> Holding {
        if let Some(answers) = self.foreign[port] {
            return Holding::Foreign { answers };
        }
        match self.holder(port) {
            None => Holding::Free,
            Some(id) if self.instances[id].kind == Kind::Gateway && self.instances[id].life == Life::Alive => Holding::LiveGateway(id),
            Some(id) => Holding::Silent(id),
        }
    }
    fn start(&mut self, port: usize, kind: Kind) {
        if !self.held(port) {
            self.instances.push(Inst { port, kind, life: Life::Alive, clients: 0, children: 0 });
        }
    }
    /// The instance `i` if it is alive (not stopped, not gone) and of `kind`.
    fn alive(&self, i: usize, kind: Kind) -> Option<&Inst> {
        self.instances.get(i).filter(|i| i.life == Life::Alive && i.kind == kind)
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        (2usize..=3).prop_map(|ports| Model { ports, instances: Vec::new(), foreign: vec![None; ports] }).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let ports = state.ports;
        let present: Vec<usize> = (0..state.instances.len()).filter(|&i| state.instances[i].life != Life::Gone).collect();
        let gateways: Vec<usize> = present.iter().copied().filter(|&i| state.instances[i].kind == Kind::Gateway).collect();
        let helpers: Vec<usize> = (0..state.instances.len()).filter(|&i| state.alive(i, Kind::Helper).is_some()).collect();
        let free: Vec<usize> = (0..ports).filter(|&p| !state.held(p)).collect();
        let foreign: Vec<usize> = (0..ports).filter(|&p| state.foreign[p].is_some()).collect();
        let mut options: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (3, (0..ports).prop_map(|port| Op::Start { port }).boxed()),
            (2, (0..ports, 2usize..=4).prop_map(|(port, k)| Op::Burst { port, k }).boxed()),
            (1, (0..ports, any::<bool>()).prop_map(|(port, closed_stdout)| Op::Status { port, closed_stdout }).boxed()),
            (1, (0..ports).prop_map(|port| Op::NoAuth { port }).boxed()),
        ];
        if !free.is_empty() {
            options.push((1, (select(free.clone()), any::<bool>()).prop_map(|(port, answers)| Op::Foreign { port, answers }).boxed()));
            options.push((1, select(free).prop_map(|port| Op::Helper { port }).boxed()));
        }
        if !foreign.is_empty() {
            options.push((1, select(foreign).prop_map(|port| Op::ForeignClose { port }).boxed()));
        }
        if !helpers.is_empty() {
            options.push((1, select(helpers.clone()).prop_map(|inst| Op::Spawn { inst }).boxed()));
            let how = prop_oneof![Just(Crash::Panic), Just(Crash::Abort)];
            options.push((1, (select(helpers), how).prop_map(|(inst, how)| Op::Crash { inst, how }).boxed()));
        }
        if !present.is_empty() {
            let sig = prop_oneof![Just(Sig::Kill), Just(Sig::Term), Just(Sig::Int), Just(Sig::Stop), Just(Sig::Cont)];
            options.push((4, (select(present), sig).prop_map(|(inst, sig)| Op::Signal { inst, sig }).boxed()));
        }
        if !gateways.is_empty() {
            options.push((2, select(gateways.clone()).prop_map(|inst| Op::Connect { inst }).boxed()));
            options.push((1, select(gateways).prop_map(|inst| Op::Disconnect { inst }).boxed()));
        }
        Union::new_weighted(options).boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        let inst = |i: usize| state.instances.get(i).filter(|i| i.life != Life::Gone);
        match *op {
            Op::Start { port } | Op::Burst { port, .. } | Op::Status { port, .. } | Op::NoAuth { port } => port < state.ports,
            Op::Helper { port } | Op::Foreign { port, .. } => port < state.ports && !state.held(port),
            Op::Spawn { inst: i } => state.alive(i, Kind::Helper).is_some_and(|i| i.children < MAX_CHILDREN),
            Op::Crash { inst: i, .. } => state.alive(i, Kind::Helper).is_some(),
            Op::Signal { inst: i, .. } => inst(i).is_some(),
            Op::Connect { inst: i } => state.alive(i, Kind::Gateway).is_some_and(|i| i.clients < MAX_CLIENTS),
            Op::Disconnect { inst: i } => inst(i).is_some_and(|i| i.clients > 0),
            Op::ForeignClose { port } => port < state.ports && state.foreign[port].is_some(),
        }
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        match *op {
            Op::Start { port } | Op::Burst { port, .. } => state.start(port, Kind::Gateway),
            Op::Helper { port } => state.start(port, Kind::Helper),
            Op::Spawn { inst } => state.instances[inst].children += 1,
            Op::Crash { inst, .. } => state.instances[inst].life = Life::Gone,
            Op::Signal { inst, sig } => {
                let i = &mut state.instances[inst];
                i.life = i.life.after(sig);
                if i.life == Life::Gone {
                    i.clients = 0;
                }
            }
            Op::Connect { inst } => state.instances[inst].clients += 1,
            Op::Disconnect { inst } => state.instances[inst].clients -= 1,
            Op::Foreign { port, answers } => state.foreign[port] = Some(answers),
            Op::ForeignClose { port } => state.foreign[port] = None,
            Op::Status { .. } | Op::NoAuth { .. } => {}
        }
        state
    }
}

/// One real instance: a process that printed its ready line.
struct Instance {
    /// The harness's process (its stderr drained, so writes never fail), continued and killed if
    /// dropped unreaped.
    child: Proc,
    port: u16,
    /// The service manager's end of this gateway's `NOTIFY_SOCKET` (helpers have none).
    notify: Option<UnixDatagram>,
    clients: Vec<Ws>,
}

impl Instance {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.pid() as i32)
    }

    /// The next stdout line (bounded).
    fn read_line(&mut self) -> String {
        self.child.read_line(DEADLINE).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// The real system of one case. Dropping it continues and kills every process it started.
struct System {
    ports: Vec<u16>,
    /// Per-case scratch directory: each process gets its own `XDG_STATE_HOME` below it, so that
    /// instances on different ports never share a state directory (removed on drop).
    scratch: PathBuf,
    spawned: usize,
    /// The test's own (foreign) listeners, by port index.
    foreign: Vec<Option<ForeignListener>>,
    /// By model instance id; `None` once gone (reaped).
    instances: Vec<Option<Instance>>,
    /// Children the helpers spawned (REL-3): they outlive the helper and are killed on drop.
    children: Vec<Pid>,
}

impl Drop for System {
    fn drop(&mut self) {
        // Each `Instance` continues and kills its process when dropped.
        self.instances.clear();
        for &child in &self.children {
            let _ = kill(child, Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A spawned contender (killed, continued first, if dropped unsettled) and the service
/// manager's end of its `NOTIFY_SOCKET`.
struct Contender(Proc, UnixDatagram);

/// How a start ended.
enum Outcome {
    Ready(Instance),
    /// Exited without a ready line: exit code, stdout, stderr.
    Refused(Option<i32>, String, String),
}

/// Starts `gateway run` on `port`, given by `--port`, or with `via_env` by `GATEWAY_PORT` alone
/// (CLI-3: an ignored variable would bind the default port, and the ready line would differ).
/// `state` is its own scratch directory: `XDG_STATE_HOME` and its `NOTIFY_SOCKET` (OPS-7).
fn spawn_gateway(port: u16, state: &Path, via_env: bool) -> Contender {
    std::fs::create_dir_all(state).unwrap();
    let notify_path = state.join("notify");
    let notify = UnixDatagram::bind(&notify_path).expect("bind NOTIFY_SOCKET");
    let mut cmd = Command::new(gateway_bin());
    if via_env {
        cmd.arg("run").env("GATEWAY_PORT", port.to_string());
    } else {
        cmd.args(["run", "--port", &port.to_string()]).env_remove("GATEWAY_PORT");
    }
    cmd.env("GATEWAY_LOG", "warn").env("XDG_STATE_HOME", state).env("NOTIFY_SOCKET", &notify_path);
    Contender(Proc::spawn_with(cmd, Streams::default(), false).expect("spawn gateway"), notify)
}

/// Every notification queued on `socket` so far (the sender has exited or sent already).
fn notifications(socket: &UnixDatagram) -> Vec<String> {
    socket.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = socket.recv(&mut buf) {
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    got
}

/// OPS-7: waits (bounded) for a notification carrying `state` (e.g. `READY=1`).
fn expect_notification(socket: &UnixDatagram, state: &str) {
    socket.set_nonblocking(false).unwrap();
    socket.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 512];
    loop {
        let n = socket.recv(&mut buf).unwrap_or_else(|e| panic!("OPS-7: no {state} notification: {e}"));
        if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == state) {
            return;
        }
    }
}

/// Waits (bounded) for the ready line or the exit of a contender.
fn settle(contender: Contender, port: u16) -> Outcome {
    // The child is a `Proc` throughout: a failed check below leaves no process behind.
    let Contender(child, notify) = contender;
    let mut instance = Instance { child, port, notify: Some(notify.try_clone().unwrap()), clients: Vec::new() };
    let line = instance.read_line();
    if !line.is_empty() {
        assert_eq!(line, format!("{}\n", spec::ready_line("127.0.0.1", port)), "CLI-1: the ready line");
        // OPS-7: readiness is announced once the port is held.
        expect_notification(&notify, "READY=1");
        return Outcome::Ready(instance);
    }
    let child = &mut instance.child;
    let status = child.wait(DEADLINE).unwrap_or_else(|e| panic!("a refused gateway on port {port} closed stdout but did not exit: {e}"));
    let (out, err) = (child.stdout_rest(DEADLINE), child.stderr(DEADLINE));
    // OPS-7: a refused start announces nothing.
    let sent = notifications(&notify);
    assert!(sent.is_empty(), "OPS-7: a refused start sent {sent:?}");
    Outcome::Refused(status.code(), out, err)
}

/// LOCK-1, ERR-1, LOCK-3, OPS-1: a refusal is exactly ERR-1 as the first stderr line, nothing on
/// stdout; then the holder `holding` with pid `pid`; exit 5 iff it answered as a live gateway.
fn assert_refused(code: Option<i32>, stdout: &str, stderr: &str, port: u16, holding: Holding, pid: u32) {
    let context = format!("holder {holding:?} pid {pid}, exit {code:?}, stderr {stderr:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = held_message(&format!("ws://127.0.0.1:{port}"));
    assert_eq!(lines.first(), Some(&expected.as_str()), "ERR-1: first stderr line ({context})");
    assert_eq!(stdout, "", "LOCK-3: a refused start prints nothing on stdout");
    // OPS-1: the holder's process, unless the 200 ms bound cut the search short (and it says so).
    let process = lines.get(1).copied().unwrap_or_default();
    let cut_short = process.contains("was not found within");
    let named = process.starts_with(&format!("  holder: pid {pid} (uid "));
    // The test process forks for every spawn: between fork and exec its child shares the
    // foreign listener for a moment, and a prober may name that child (same command line).
    let fork_of_test = matches!(holding, Holding::Foreign { .. })
        && process.starts_with("  holder: pid ")
        && process.contains(&format!("): {}", std::env::args().next().unwrap_or_default()));
    assert!(cut_short || named || fork_of_test, "OPS-1: holder line ({context})");
    let answer = lines.get(2).copied().unwrap_or_default();
    let no_answer = answer.starts_with("  holder did not answer GET /healthz within 200 ms");
    match holding {
        Holding::LiveGateway(_) => {
            let live = answer.starts_with("  holder is a live gateway: profile (none), version ");
            // A live gateway answers within the bound; only a machine too busy for that may say it did not.
            assert!((live && code == Some(5)) || (no_answer && code == Some(3)), "OPS-1: refusal by a live gateway ({context})");
        }
        Holding::Silent(_) | Holding::Foreign { answers: false } => {
            assert!(no_answer && code == Some(3), "OPS-1: refusal by a silent holder ({context})");
        }
        Holding::Foreign { answers: true } => {
            let other = answer.starts_with("  holder is not a gateway: GET /healthz ");
            assert!((other || no_answer) && code == Some(3), "OPS-1, LOCK-2: refusal by a foreign server ({context})");
        }
        Holding::Free => unreachable!("refused on a free port"),
    }
}

/// How an instance is expected to end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// SHUT-1: clients closed with 1012, exit 0, `STOPPING=1` sent.
    Graceful,
    /// Killed by one of these signals.
    Signalled(&'static [Signal]),
    /// Exited with this code (a panic: 101).
    Code(i32),
}

impl System {
    fn instance(&mut self, id: usize) -> &mut Instance {
        self.instances[id].as_mut().unwrap_or_else(|| panic!("instance {id} is gone"))
    }

    /// Waits for instance `id` to exit and checks how it ended.
    fn reap(&mut self, id: usize, end: End) {
        let mut inst = self.instances[id].take().unwrap();
        let pid = inst.pid();
        if end == End::Graceful {
            // SHUT-1: every client gets the close frame 1012 "service restart" and replies.
            for (n, mut ws) in inst.clients.drain(..).enumerate() {
                let frame = loop {
                    match ws.read() {
                        Ok(Message::Close(frame)) => break frame,
                        Ok(_) => continue,
                        Err(err) => panic!("SHUT-1: client {n} of instance {id} got no close frame: {err}"),
                    }
                };
                let frame = frame.expect("SHUT-1: close frame without a code");
                assert_eq!(frame.code, CloseCode::from(1012), "SHUT-1: close code");
                assert_eq!(frame.reason, spec::close::SERVICE_RESTART.1, "SHUT-1: close reason");
                let _ = ws.flush();
            }
        }
        let status = inst.child.wait(DEADLINE).unwrap_or_else(|e| panic!("instance {id} (pid {pid}): {e}"));
        match end {
            End::Graceful => {
                assert_eq!(status.code(), Some(0), "SHUT-1: graceful exit code of instance {id}");
                let sent = notifications(inst.notify.as_ref().unwrap());
                assert!(sent.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")), "OPS-7: no STOPPING=1 from instance {id}: {sent:?}");
            }
            End::Signalled(signals) => {
                let sig = status.signal().and_then(|s| Signal::try_from(s).ok());
                assert!(sig.is_some_and(|s| signals.contains(&s)), "instance {id} should have died of one of {signals:?}: {status:?}");
            }
            End::Code(code) => assert_eq!(status.code(), Some(code), "instance {id}'s exit code"),
        }
        inst.clients.clear();
        // REL-1: the port is free at once (the next `Start` checks a successor binds).
    }

    /// The pid of whatever holds `port` as the model says (for OPS-1/OPS-2 expectations).
    fn holding_pid(&self, holding: Holding) -> u32 {
        match holding {
            Holding::LiveGateway(id) | Holding::Silent(id) => self.instances[id].as_ref().expect("holder reaped").child.pid(),
            Holding::Foreign { .. } => std::process::id(),
            Holding::Free => 0,
        }
    }

    /// Writes a command line to helper `id`'s stdin.
    fn tell_helper(&mut self, id: usize, command: &str) {
        let stdin = self.instance(id).child.stdin().expect("helper stdin");
        writeln!(stdin, "{command}").and_then(|_| stdin.flush()).expect("write to helper");
    }
}

/// `gateway status --port P` (OPS-2): exit code and stdout.
fn status_of(port: u16) -> (Option<i32>, String) {
    let mut cmd = Command::new(gateway_bin());
    cmd.args(["status", "--port", &port.to_string()]).env_remove("GATEWAY_PORT").env("GATEWAY_LOG", "warn");
    let (status, out, _) = run_cmd_to_exit(cmd);
    (status.code(), out)
}

struct Processes;

impl StateMachineTest for Processes {
    type SystemUnderTest = System;
    type Reference = Reference;

    fn init_test(model: &Model) -> System {
        let ports = free_ports(model.ports);
        let scratch = case_dir("gateway-prop");
        System {
            ports,
            scratch,
            spawned: 0,
            instances: Vec::new(),
            foreign: (0..model.ports).map(|_| None).collect(),
            children: Vec::new(),
        }
    }

    fn apply(mut sys: System, model: &Model, op: Op) -> System {
        match op {
            Op::Start { port } | Op::Burst { port, .. } => {
                let k = if let Op::Burst { k, .. } = op { k } else { 1 };
                let p = sys.ports[port];
                // The model after this step: a new instance iff the port was free.
                let won = model.instances.len() > sys.instances.len();
                let states: Vec<PathBuf> = (0..k).map(|n| sys.scratch.join(format!("state-{}", sys.spawned + n))).collect();
                let first = sys.spawned;
                sys.spawned += k;
                // Every other start names its port through the environment (CLI-3).
                let contenders: Vec<Contender> =
                    states.iter().enumerate().map(|(n, state)| spawn_gateway(p, state, (first + n) % 2 == 1)).collect();
                let mut winners = Vec::new();
                let mut refusals = Vec::new();
                for contender in contenders {
                    match settle(contender, p) {
                        Outcome::Ready(inst) => winners.push(inst),
                        Outcome::Refused(code, out, err) => refusals.push((code, out, err)),
                    }
                }
                let count = winners.len();
                if won {
                    assert_eq!(count, 1, "LOCK-6/REL-1: exactly one of {k} contender(s) on free port {p} must win");
                    // The losers raced the winner: it held the port, a live gateway (perhaps not yet answering).
                    let winner = winners[0].child.pid();
                    for (code, out, err) in refusals {
                        assert_refused(code, &out, &err, p, Holding::LiveGateway(model.instances.len() - 1), winner);
                    }
                    sys.instances.push(winners.pop());
                } else {
                    let holding = model.holding(port);
                    assert_eq!(count, 0, "LOCK-1/LOCK-2: {count} of {k} start(s) won port {p}, held by {holding:?}");
                    let pid = sys.holding_pid(holding);
                    for (code, out, err) in refusals {
                        assert_refused(code, &out, &err, p, holding, pid);
                    }
                }
            }
            Op::Helper { port } => {
                let p = sys.ports[port];
                let mut cmd = Command::new(helper_bin());
                cmd.arg(p.to_string());
                let streams = Streams { stdin: Stdio::piped(), stderr: Stdio::null(), ..Streams::default() };
                let child = Proc::spawn_with(cmd, streams, false).expect("spawn crash_helper");
                let mut inst = Instance { child, port: p, notify: None, clients: Vec::new() };
                let line = inst.read_line();
                assert_eq!(line, format!("{}\n", spec::ready_line("127.0.0.1", p)), "the helper's ready line on free port {p}");
                sys.instances.push(Some(inst));
            }
            Op::Spawn { inst: id } => {
                sys.tell_helper(id, "spawn");
                let line = sys.instance(id).read_line();
                let pid: i32 = line.trim().strip_prefix("child ").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("spawn: {line:?}"));
                sys.children.push(Pid::from_raw(pid));
            }
            Op::Crash { inst: id, how } => {
                sys.tell_helper(id, if how == Crash::Panic { "panic" } else { "abort" });
                sys.reap(id, if how == Crash::Panic { End::Code(101) } else { End::Signalled(&[Signal::SIGABRT]) });
            }
            Op::Signal { inst: id, sig } => {
                let pid = sys.instance(id).pid();
                kill(pid, sig.nix()).expect("kill");
                let inst = &model.instances[id];
                match inst.life {
                    Life::Gone => {
                        let end = match (sig, inst.kind) {
                            (Sig::Kill, _) => End::Signalled(&[Signal::SIGKILL]),
                            (_, Kind::Gateway) => End::Graceful,
                            // The helper handles no signal: the pending one(s) kill it.
                            (_, Kind::Helper) => End::Signalled(&[Signal::SIGTERM, Signal::SIGINT]),
                        };
                        sys.reap(id, end);
                    }
                    // The kernel has stopped or continued it before the next step probes it.
                    Life::Stopped { .. } => wait_stopped(pid, true),
                    Life::Alive => wait_stopped(pid, false),
                }
            }
            Op::Connect { inst: id } => {
                let port = sys.instance(id).port;
                let ws = ws_connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
                sys.instance(id).clients.push(ws);
            }
            Op::Disconnect { inst: id } => {
                let alive = model.instances[id].life == Life::Alive;
                let mut ws = sys.instance(id).clients.remove(0);
                if alive {
                    // A clean close: ours, the gateway's reply, then the end of the stream.
                    ws.close(None).expect("close");
                    while ws.read().is_ok() {}
                }
            }
            Op::Foreign { port, answers } => {
                // LOCK-2: the model says the port is free.
                sys.foreign[port] = Some(ForeignListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, sys.ports[port])), answers));
            }
            Op::ForeignClose { port } => sys.foreign[port] = None,
            Op::Status { port, closed_stdout: true } => {
                // CLI-4: nobody reads the line; still no panic, and the exit code tells the state.
                let mut cmd = Command::new(gateway_bin());
                cmd.args(["status", "--port", &sys.ports[port].to_string()]).env_remove("GATEWAY_PORT");
                let (status, err) = run_with_closed_stdout(cmd);
                let want = match model.holding(port) {
                    Holding::Free => 3,
                    Holding::LiveGateway(_) => 0,
                    Holding::Foreign { answers: true } => 4,
                    Holding::Foreign { answers: false } | Holding::Silent(_) => 5,
                };
                assert!(status.code() == Some(want) && !err.contains("panicked"), "CLI-4, OPS-2: {status:?}, stderr {err:?}, want {want}");
            }
            Op::Status { port, closed_stdout: false } => {
                let p = sys.ports[port];
                let holding = model.holding(port);
                let pid = sys.holding_pid(holding);
                let (code, out) = status_of(p);
                let url = format!("ws://127.0.0.1:{p}");
                let context = format!("OPS-2: status of {url} held by {holding:?} (pid {pid}): exit {code:?}, {out:?}");
                let ok = match holding {
                    Holding::Free => code == Some(3) && out == format!("{url}: free\n"),
                    Holding::LiveGateway(_) => code == Some(0) && out.starts_with(&format!("{url}: gateway (pid {pid}, profile (none), ")),
                    Holding::Foreign { answers: true } => {
                        code == Some(4) && out.starts_with(&format!("{url}: foreign process (pid {pid}")) && out.contains("; GET /healthz ")
                    }
                    Holding::Foreign { answers: false } | Holding::Silent(_) => {
                        let stopped = matches!(holding, Holding::Silent(id) if model.instances[id].life != Life::Alive);
                        let process = format!("(pid {pid}{}: ", if stopped { ", stopped" } else { "" });
                        code == Some(5) && out.starts_with(&format!("{url}: held but not answering within 1000 ms {process}"))
                    }
                };
                assert!(ok, "{context}");
            }
            Op::NoAuth { port } => {
                // DOOR-2: refused before the bind, whether the port is free or held: exit 7, never 3.
                let mut cmd = Command::new(gateway_bin());
                cmd.args(["run", "--host", "0.0.0.0", "--port", &sys.ports[port].to_string()]);
                for var in ["GATEWAY_TOKEN", "GATEWAY_TOKEN_FILE", "GATEWAY_HOST", "GATEWAY_PORT"] {
                    cmd.env_remove(var);
                }
                let (status, out, err) = run_cmd_to_exit(cmd);
                let want = format!("{}\n", gateway_harness::spec::refusing_without_auth("0.0.0.0"));
                assert!(status.code() == Some(7) && out.is_empty() && err == want, "DOOR-2: {status:?} {out:?} {err:?}");
            }
        }
        sys
    }

    fn check_invariants(sys: &System, model: &Model) {
        // (DOOR-2 too: a refused unauthenticated wildcard bind left no listener behind.)
        for (idx, &port) in sys.ports.iter().enumerate() {
            let listeners = listeners_on(port);
            assert!(listeners <= 1, "LOCK-1: {listeners} listeners on port {port}");
            // REL-3 too: a port whose holder is gone is free, even while the holder's children live.
            let (holder, foreign) = (model.holder(idx), model.foreign[idx]);
            assert_eq!(
                listeners,
                usize::from(model.held(idx)),
                "port {port}: model holder {holder:?}, foreign {foreign:?}, {listeners} listener(s), helper children {:?}",
                sys.children
            );
        }
        // REL-3 means something only while the children live on.
        for &child in &sys.children {
            assert!(kill(child, None).is_ok(), "REL-3: helper child {child} died");
        }
        let mut by_port = HashMap::new();
        for (id, inst) in model.instances.iter().enumerate() {
            let real = sys.instances[id].as_ref();
            match inst.life {
                Life::Gone => assert!(real.is_none(), "instance {id} should be gone"),
                life => {
                    let real = real.unwrap_or_else(|| panic!("instance {id} missing"));
                    assert!(by_port.insert(inst.port, id).is_none(), "model: two holders of port index {}", inst.port);
                    assert_eq!(real.clients.len(), inst.clients);
                    if life == Life::Alive && inst.kind == Kind::Gateway {
                        // The port's holder is this very process.
                        let body = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, real.port)), "/healthz");
                        let pid = format!("\"pid\":{}", real.child.pid());
                        assert!(body.starts_with("HTTP/1.1 200 ") && body.contains(&pid), "SRV-1: instance {id} health: {body:?}");
                    }
                }
            }
        }
    }
}

prop_state_machine! {
    #![proptest_config(config(DEFAULT_CASES, 400))]

    /// LOCK-1, LOCK-2, LOCK-3, LOCK-5 (a shared port would show two holders), LOCK-6, CLI-3 (every
    /// other start names its port only through GATEWAY_PORT), ERR-1, REL-1, REL-2, REL-3, SHUT-1,
    /// SHUT-3, OPS-1, OPS-2, OPS-7, DOOR-2, CLI-4: random starts, bursts, helpers that spawn children and
    /// crash, signals, clients, foreign listeners, `status` and unauthenticated wildcard binds against
    /// the reference model.
    #[test]
    fn lock1_lock6_rel1_processes_follow_the_model(sequential 1..20 => Processes);
}
