//! A proptest state machine over real `gateway` processes, real ports and real signals.
//!
//! The reference model ([`Model`]) says which instance holds which port and whether it is
//! alive, stopped (`SIGSTOP`) or gone. Random sequences of operations ([`Op`]: start one
//! instance, start a burst of contenders at once, send `SIGKILL`/`SIGTERM`/`SIGINT`/`SIGSTOP`/
//! `SIGCONT`, connect or disconnect a WebSocket client, open or close a foreign listener) drive
//! both, and after every step the
//! real system is checked against the model:
//!
//! - LOCK-1: at most one listener per port (read from `/proc/net/tcp`), and exactly one while the
//!   model says the port is held, by the instance the model names (its `/healthz` pid);
//! - LOCK-1, ERR-1, LOCK-3: a start fails iff a live or stopped instance holds the port, with the
//!   exact message as the first stderr line, exit code 3 (or 5, "held by a healthy gateway"),
//!   nothing on stdout;
//! - LOCK-2: a port held by a foreign listener (the test's own) refuses the same way, exit 3;
//! - LOCK-6: among k simultaneous contenders on a free port exactly one wins;
//! - REL-1, REL-2: after the holder dies (any signal, with clients connected) a fresh start succeeds;
//! - SHUT-1, SHUT-3: `SIGTERM`/`SIGINT` close every client with 1012 and exit 0 (also when the
//!   signal was sent while stopped and is delivered on `SIGCONT`).
//!
//! Shrinking prints a minimal sequence of [`Op`]s. `PROPTEST_CASES` raises the case count
//! (default [`DEFAULT_CASES`], sized for CI on 2 busy cores). Every process is continued and
//! killed when a case ends, pass or fail ([`System`]'s `Drop`).
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{gateway_bin, held_message, http_get, read_line_with_deadline, wait_with_deadline, ws_connect, Ws, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest::test_runner::Config;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// Cases run by default; `PROPTEST_CASES` overrides.
const DEFAULT_CASES: u32 = 32;
/// Most WebSocket clients one instance gets in a case.
const MAX_CLIENTS: usize = 3;

/// A signal an [`Op::Signal`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Kill,
    Term,
    Int,
    Stop,
    Cont,
}

impl Sig {
    fn nix(self) -> Signal {
        match self {
            Sig::Kill => Signal::SIGKILL,
            Sig::Term => Signal::SIGTERM,
            Sig::Int => Signal::SIGINT,
            Sig::Stop => Signal::SIGSTOP,
            Sig::Cont => Signal::SIGCONT,
        }
    }
}

/// One step. `port` is an index into the case's ports; `inst` the n-th instance that started.
#[derive(Debug, Clone)]
enum Op {
    /// `gateway run --port P`.
    Start { port: usize },
    /// `k` instances of `gateway run --port P` spawned at once.
    Burst { port: usize, k: usize },
    /// A signal to instance `inst`.
    Signal { inst: usize, sig: Sig },
    /// A new WebSocket client of instance `inst`.
    Connect { inst: usize },
    /// Instance `inst`'s oldest client closes.
    Disconnect { inst: usize },
    /// The test itself (not a gateway) listens on free port P.
    Foreign { port: usize },
    /// The test's own listener on P closes.
    ForeignClose { port: usize },
}

/// Where an instance is in its life, as the model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Life {
    Alive,
    /// Stopped by `SIGSTOP`; `exit_on_cont` when a `SIGTERM`/`SIGINT` is pending.
    Stopped {
        exit_on_cont: bool,
    },
    Gone,
}

#[derive(Debug, Clone)]
struct Inst {
    port: usize,
    life: Life,
    clients: usize,
}

/// The reference model.
#[derive(Debug, Clone)]
struct Model {
    ports: usize,
    instances: Vec<Inst>,
    /// Ports held by a foreign (non-gateway) listener of the test.
    foreign: Vec<bool>,
}

impl Model {
    /// The instance holding `port` (alive or stopped), if any.
    fn holder(&self, port: usize) -> Option<usize> {
        self.instances.iter().position(|i| i.port == port && i.life != Life::Gone)
    }
    /// Whether anything (an instance, alive or stopped, or a foreign listener) holds `port`.
    fn held(&self, port: usize) -> bool {
        self.foreign[port] || self.holder(port).is_some()
    }
    fn start(&mut self, port: usize) {
        if !self.held(port) {
            self.instances.push(Inst { port, life: Life::Alive, clients: 0 });
        }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        (2usize..=3).prop_map(|ports| Model { ports, instances: Vec::new(), foreign: vec![false; ports] }).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let ports = state.ports;
        let present: Vec<usize> = (0..state.instances.len()).filter(|&i| state.instances[i].life != Life::Gone).collect();
        let free: Vec<usize> = (0..ports).filter(|&p| !state.held(p)).collect();
        let foreign: Vec<usize> = (0..ports).filter(|&p| state.foreign[p]).collect();
        let mut options: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (3, (0..ports).prop_map(|port| Op::Start { port }).boxed()),
            (2, (0..ports, 2usize..=4).prop_map(|(port, k)| Op::Burst { port, k }).boxed()),
        ];
        if !free.is_empty() {
            options.push((1, select(free).prop_map(|port| Op::Foreign { port }).boxed()));
        }
        if !foreign.is_empty() {
            options.push((1, select(foreign).prop_map(|port| Op::ForeignClose { port }).boxed()));
        }
        if !present.is_empty() {
            let sig = prop_oneof![Just(Sig::Kill), Just(Sig::Term), Just(Sig::Int), Just(Sig::Stop), Just(Sig::Cont)];
            options.push((4, (select(present.clone()), sig).prop_map(|(inst, sig)| Op::Signal { inst, sig }).boxed()));
            options.push((2, select(present.clone()).prop_map(|inst| Op::Connect { inst }).boxed()));
            options.push((1, select(present).prop_map(|inst| Op::Disconnect { inst }).boxed()));
        }
        Union::new_weighted(options).boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        let inst = |i: usize| state.instances.get(i).filter(|i| i.life != Life::Gone);
        match *op {
            Op::Start { port } | Op::Burst { port, .. } => port < state.ports,
            Op::Signal { inst: i, .. } => inst(i).is_some(),
            Op::Connect { inst: i } => inst(i).is_some_and(|i| i.life == Life::Alive && i.clients < MAX_CLIENTS),
            Op::Disconnect { inst: i } => inst(i).is_some_and(|i| i.clients > 0),
            Op::Foreign { port } => port < state.ports && !state.held(port),
            Op::ForeignClose { port } => port < state.ports && state.foreign[port],
        }
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        match *op {
            Op::Start { port } | Op::Burst { port, .. } => state.start(port),
            Op::Signal { inst, sig } => {
                let i = &mut state.instances[inst];
                i.life = match (i.life, sig) {
                    (_, Sig::Kill) => Life::Gone,
                    (Life::Alive, Sig::Term | Sig::Int) => Life::Gone,
                    (Life::Stopped { .. }, Sig::Term | Sig::Int) => Life::Stopped { exit_on_cont: true },
                    (Life::Alive, Sig::Stop) => Life::Stopped { exit_on_cont: false },
                    (Life::Stopped { exit_on_cont: true }, Sig::Cont) => Life::Gone,
                    (Life::Stopped { exit_on_cont: false }, Sig::Cont) => Life::Alive,
                    (life, _) => life,
                };
                if i.life == Life::Gone {
                    i.clients = 0;
                }
            }
            Op::Connect { inst } => state.instances[inst].clients += 1,
            Op::Disconnect { inst } => state.instances[inst].clients -= 1,
            Op::Foreign { port } => state.foreign[port] = true,
            Op::ForeignClose { port } => state.foreign[port] = false,
        }
        state
    }
}

/// One real instance: a `gateway` process that printed its ready line.
struct Instance {
    child: Child,
    port: u16,
    _stdout: BufReader<ChildStdout>,
    /// Kept open (unread: the gateway logs next to nothing at `warn`) so writes never fail.
    _stderr: Option<ChildStderr>,
    clients: Vec<Ws>,
}

impl Instance {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for Instance {
    /// Continues and kills the process (a no-op once it has been reaped): nothing outlives its
    /// case, also when an assertion fails mid-step (e.g. two winners of a burst).
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(self.pid(), Signal::SIGCONT);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
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
    foreign: Vec<Option<TcpListener>>,
    /// By model instance id; `None` once gone (reaped).
    instances: Vec<Option<Instance>>,
}

impl Drop for System {
    fn drop(&mut self) {
        // Each `Instance` continues and kills its process when dropped.
        self.instances.clear();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// A spawned contender; killed (continued first) if dropped unsettled.
struct Contender(Option<Child>);

impl Drop for Contender {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a start ended.
enum Outcome {
    Ready(Instance),
    /// Exited without a ready line: exit code, stdout, stderr.
    Refused(Option<i32>, String, String),
}

/// Starts `gateway run` on `port`, given by `--port`, or with `via_env` by `GATEWAY_PORT` alone
/// (CLI-3: an ignored variable would bind the default port, and the ready line would differ).
fn spawn_gateway(port: u16, state: &Path, via_env: bool) -> Contender {
    let mut cmd = Command::new(gateway_bin());
    if via_env {
        cmd.arg("run").env("GATEWAY_PORT", port.to_string());
    } else {
        cmd.args(["run", "--port", &port.to_string()]).env_remove("GATEWAY_PORT");
    }
    let child = cmd
        .env("GATEWAY_LOG", "warn")
        .env("XDG_STATE_HOME", state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    Contender(Some(child))
}

/// Waits (bounded) for the ready line or the exit of a contender.
fn settle(mut contender: Contender, port: u16) -> Outcome {
    let mut child = contender.0.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let line = read_line_with_deadline(&mut stdout, DEADLINE);
    if !line.is_empty() {
        assert_eq!(line, format!("listening on ws://127.0.0.1:{port}\n"), "CLI-1: the ready line");
        let stderr = child.stderr.take();
        return Outcome::Ready(Instance { child, port, _stdout: stdout, _stderr: stderr, clients: Vec::new() });
    }
    let status = wait_with_deadline(&mut child, DEADLINE);
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("a refused gateway on port {port} closed stdout but did not exit within {DEADLINE:?}");
    };
    let (mut out, mut err) = (String::new(), String::new());
    stdout.read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    Outcome::Refused(status.code(), out, err)
}

/// LOCK-1, ERR-1, LOCK-3: a refusal is exactly ERR-1 as the first stderr line, nothing on stdout,
/// exit code 3 (or 5: "held by a healthy gateway", when the holder answers its health probe).
fn assert_refused(code: Option<i32>, stdout: &str, stderr: &str, port: u16, holder_is_gateway: bool) {
    let expected = held_message(&format!("ws://127.0.0.1:{port}"));
    assert_eq!(stderr.lines().next(), Some(expected.as_str()), "ERR-1: first stderr line (whole stderr: {stderr:?})");
    let healthy_gateway_code = if holder_is_gateway { Some(5) } else { None };
    assert!(code == Some(3) || code == healthy_gateway_code, "ERR-1: exit code {code:?}, want 3 (or 5 if the holder is a gateway)");
    assert_eq!(stdout, "", "LOCK-3: a refused start prints nothing on stdout");
}

/// LOCK-1: listening sockets on 127.0.0.1:`port` or *:`port`, from `/proc/net/tcp`.
fn listeners_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let (local, any) = (format!("0100007F:{port:04X}"), format!("00000000:{port:04X}"));
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3 && (cols[1] == local || cols[1] == any) && cols[3] == "0A"
        })
        .count()
}

impl System {
    fn instance(&mut self, id: usize) -> &mut Instance {
        self.instances[id].as_mut().unwrap_or_else(|| panic!("instance {id} is gone"))
    }

    /// Waits for instance `id` to exit after a signal and checks how it ended.
    fn reap(&mut self, id: usize, graceful: bool) {
        let mut inst = self.instances[id].take().unwrap();
        let pid = inst.pid();
        if graceful {
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
                assert_eq!(frame.reason, "service restart", "SHUT-1: close reason");
                let _ = ws.flush();
            }
        }
        let status = wait_with_deadline(&mut inst.child, DEADLINE).unwrap_or_else(|| panic!("instance {id} (pid {pid}) did not exit"));
        if graceful {
            assert_eq!(status.code(), Some(0), "SHUT-1: graceful exit code of instance {id}");
        } else {
            assert_eq!(status.code(), None, "instance {id} should have died of SIGKILL: {status:?}");
        }
        inst.clients.clear();
        // REL-1: the port is free at once (the next `Start` checks a successor binds).
    }
}

struct Processes;

impl StateMachineTest for Processes {
    type SystemUnderTest = System;
    type Reference = Reference;

    fn init_test(model: &Model) -> System {
        // Distinct free ports from the OS, released again before the case uses them.
        let probes: Vec<TcpListener> = (0..model.ports).map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()).collect();
        let ports = probes.iter().map(|l| l.local_addr().unwrap().port()).collect();
        static CASE: AtomicUsize = AtomicUsize::new(0);
        let case = CASE.fetch_add(1, Ordering::Relaxed);
        let scratch = std::env::temp_dir().join(format!("gateway-prop-{}-{case}", std::process::id()));
        System { ports, scratch, spawned: 0, instances: Vec::new(), foreign: (0..model.ports).map(|_| None).collect() }
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
                for contender in contenders {
                    match settle(contender, p) {
                        Outcome::Ready(inst) => winners.push(inst),
                        // LOCK-2: a foreign holder gives the same refusal, always exit 3.
                        Outcome::Refused(code, out, err) => assert_refused(code, &out, &err, p, !model.foreign[port]),
                    }
                }
                let count = winners.len();
                if won {
                    assert_eq!(count, 1, "LOCK-6/REL-1: exactly one of {k} contender(s) on free port {p} must win");
                    sys.instances.push(winners.pop());
                } else {
                    let holder = model.holder(port).map_or("a foreign listener".to_string(), |i| format!("instance {i}"));
                    assert_eq!(count, 0, "LOCK-1/LOCK-2: {count} of {k} start(s) won port {p}, held by {holder}");
                }
            }
            Op::Signal { inst: id, sig } => {
                kill(sys.instance(id).pid(), sig.nix()).expect("kill");
                match model.instances[id].life {
                    Life::Gone => sys.reap(id, sig != Sig::Kill),
                    Life::Alive | Life::Stopped { .. } => {}
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
            Op::Foreign { port } => {
                // A plain std listener (SO_REUSEADDR, like most servers): not a gateway.
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, sys.ports[port])).expect("LOCK-2: the model says the port is free");
                sys.foreign[port] = Some(listener);
            }
            Op::ForeignClose { port } => sys.foreign[port] = None,
        }
        sys
    }

    fn check_invariants(sys: &System, model: &Model) {
        for (idx, &port) in sys.ports.iter().enumerate() {
            let listeners = listeners_on(port);
            assert!(listeners <= 1, "LOCK-1: {listeners} listeners on port {port}");
            let (holder, foreign) = (model.holder(idx), model.foreign[idx]);
            assert_eq!(
                listeners,
                usize::from(model.held(idx)),
                "port {port}: model holder {holder:?}, foreign {foreign}, {listeners} listener(s)"
            );
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
                    if life == Life::Alive {
                        // The port's holder is this very process.
                        let body = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, real.port)), "/healthz");
                        let pid = format!("\"pid\":{}", real.child.id());
                        assert!(body.starts_with("HTTP/1.1 200 ") && body.contains(&pid), "SRV-1: instance {id} health: {body:?}");
                    }
                }
            }
        }
    }
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CASES);
    // Bounded shrinking: each shrink step re-runs real processes.
    Config { cases, max_shrink_iters: 400, ..Config::default() }
}

prop_state_machine! {
    #![proptest_config(config())]

    /// LOCK-1, LOCK-2, LOCK-3, LOCK-5 (a shared port would show two holders), LOCK-6, CLI-3 (every
    /// other start names its port only through GATEWAY_PORT), ERR-1, REL-1, REL-2, SHUT-1, SHUT-3: random starts, bursts,
    /// signals, clients and foreign listeners against the reference model.
    #[test]
    fn lock1_lock6_rel1_processes_follow_the_model(sequential 1..20 => Processes);
}
