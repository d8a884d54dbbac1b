//! A proptest state machine over real `gateway` processes for the operations of issue 4:
//! `gateway stop` (OPS-3), `gateway run --wait` (OPS-4), `gateway run --replace` (OPS-5) and
//! profiles with their state directories (OPS-6).
//!
//! The reference model ([`Model`]) says which instance holds which port, whether it is alive,
//! stopped (`SIGSTOP`) or gone, which profile it runs under, how many `--wait` processes wait on
//! each port (waiters are interchangeable, so the model stays deterministic: whenever a port with
//! waiters is released, "a waiter" becomes its holder), which ports a foreign listener of the
//! test holds and which profiles' state directories exist. Random sequences of [`Op`]s drive
//! both, and after every step the real system is checked against the model:
//!
//! - listeners per port as the kernel lists them (at most one; exactly one while the model says
//!   held), and every alive instance answers `/healthz` with its own pid and profile;
//! - OPS-3: `stop` ends a live gateway of this user gracefully (exit 0 once the old holder no
//!   longer listens, also while WebSocket clients that never read keep it draining; the holder
//!   exits 0) and never signals a stopped gateway (no `SIGTERM` pending in `/proc/<pid>/status`,
//!   and a later `SIGCONT` finds it alive and serving) or a foreign holder (exit 4); a free port
//!   is exit 3;
//! - OPS-4: of `k` waiters started at once on a free port exactly one takes it; on a held port
//!   all wait, print nothing and do not exit; whenever the port is released (holder killed,
//!   terminated, stopped, replaced, foreign listener closed) exactly one waiter prints its ready
//!   line and holds it, the others keep waiting;
//! - OPS-5: `--replace` ends a live gateway holder gracefully and takes the port; a stopped
//!   gateway or a foreign holder is never touched (the normal refusal, exit 3);
//! - OPS-6: a start whose profile's state directory is locked by another instance (live or
//!   stopped, on another port) exits 6 with ERR-OPS-1, no ready line, and the port is free
//!   again; a refused start creates nothing (a profile's directory exists iff an instance
//!   with that profile ever held a port); the directory is locked (the test's own `flock` is
//!   refused) exactly while an instance of its profile lives; a replacer of the same profile gets
//!   the directory of the gateway it replaced;
//! - LOCK-1, ERR-1, LOCK-3: a refused start prints nothing on stdout, ERR-1 as the first stderr
//!   line, exit 3 (or 5 when a live gateway holds the port), and writes nothing (a port's
//!   generated token exists iff an instance held that port).
//!
//! Where a bounded verification (OPS-1's 200 ms, `stop`'s 1 s) can be cut short by load, a live
//! gateway may be refused instead of stopped or replaced, as the spec says; the test then checks
//! that it was left untouched and tries again (at most [`ATTEMPTS`] times).
//!
//! All processes of a case share one `XDG_STATE_HOME` (a per-case scratch directory, removed on
//! drop), so profiles collide. Shrinking prints a minimal sequence of [`Op`]s. `PROPTEST_CASES`
//! raises the case count (default [`DEFAULT_CASES`], sized for CI on 2 busy cores). Every process
//! is continued and killed when a case ends, pass or fail (the `Drop` impls).
#![cfg(target_os = "linux")]

use gateway_harness::spec;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ChildStdout;
use std::process::Command;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::Instant;

use crate::support::process_model::{case_dir, free_ports, wait_stopped, Life, Sig};
use crate::support::proptest_config::config;
use crate::support::{
    gateway_cmd, held_message, http_get, json_body, listeners_on, run_cmd_to_exit, ws_connect, Proc, Streams, Ws, DEADLINE,
};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

/// Cases run by default; `PROPTEST_CASES` overrides.
const DEFAULT_CASES: u32 = 24;
/// The profile names of a case (few, so that they collide).
const PROFILES: [&str; 2] = ["alpha", "beta"];
/// Most WebSocket clients of one instance.
const MAX_CLIENTS: usize = 2;
/// Most `--wait` processes waiting on one port at once.
const MAX_WAITERS: usize = 3;
/// The bound of every waiter's `--wait`: far longer than a case, so a waiter never gives up.
const WAIT_FLAG: &str = "--wait=120s";
/// Attempts of an operation on a live gateway whose verification the load may cut short (OPS-1's
/// and OPS-3's probes are bounded: an unverified holder is refused, never signalled).
const ATTEMPTS: usize = 5;

/// One step. `port` is an index into the case's ports, `profile` into [`PROFILES`], `inst` the
/// n-th instance that held a port.
#[derive(Debug, Clone)]
enum Op {
    /// `gateway run --port P [--profile NAME]`.
    Start { port: usize, profile: Option<usize> },
    /// `k` × `gateway run --wait=120s --port P`, spawned at once.
    Wait { port: usize, k: usize },
    /// `gateway stop --port P`.
    Stop { port: usize },
    /// `gateway run --replace --port P [--profile NAME]` (only while nobody waits on P).
    Replace { port: usize, profile: Option<usize> },
    /// A signal to instance `inst`.
    Signal { inst: usize, sig: Sig },
    /// The test itself (not a gateway) listens on free port P.
    Foreign { port: usize },
    /// The test's own listener on P closes.
    ForeignClose { port: usize },
    /// A WebSocket client of instance `inst` that never reads: a graceful shutdown then drains for
    /// its whole grace period, so `stop` and `--replace` really have to wait for the release.
    Connect { inst: usize },
}

#[derive(Debug, Clone)]
struct Inst {
    port: usize,
    life: Life,
    profile: Option<usize>,
    clients: usize,
}

/// The reference model.
#[derive(Debug, Clone)]
struct Model {
    ports: usize,
    instances: Vec<Inst>,
    /// Ports held by a foreign (non-gateway) listener of the test.
    foreign: Vec<bool>,
    /// How many `--wait` processes wait on each port (never on a free port: one of them would take it).
    waiters: Vec<usize>,
    /// Whether each profile's state directory exists (created by the first instance of it that held a port).
    dirs: Vec<bool>,
    /// Whether a generated token was stored for each profile, the last entry for "no profile"
    /// (DOOR-5: only by a process that held a port; DOOR-6: one file per profile, not per port).
    tokens: Vec<bool>,
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
    /// The instance holding `port` if it is alive (a verifiable gateway of this user).
    fn live_holder(&self, port: usize) -> Option<usize> {
        self.holder(port).filter(|&h| self.instances[h].life == Life::Alive)
    }
    /// The instance (alive or stopped) whose lock holds `profile`'s state directory, if any.
    fn dir_holder(&self, profile: usize) -> Option<usize> {
        self.instances.iter().position(|i| i.profile == Some(profile) && i.life != Life::Gone)
    }
    /// A new process binds free `port`: it holds it, unless its profile's directory is locked (exit 6).
    fn take(&mut self, port: usize, profile: Option<usize>) {
        if let Some(q) = profile {
            self.dirs[q] = true;
            if self.dir_holder(q).is_some() {
                return;
            }
        }
        self.instances.push(Inst { port, life: Life::Alive, profile, clients: 0 });
        self.tokens[profile.unwrap_or(PROFILES.len())] = true;
    }
    /// `port` was just released: a waiter, if any, takes it.
    fn release(&mut self, port: usize) {
        if self.waiters[port] > 0 {
            self.waiters[port] -= 1;
            self.instances.push(Inst { port, life: Life::Alive, profile: None, clients: 0 });
            self.tokens[PROFILES.len()] = true;
        }
    }
}

struct Reference;

impl ReferenceStateMachine for Reference {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        (2usize..=3)
            .prop_map(|ports| Model {
                ports,
                instances: Vec::new(),
                foreign: vec![false; ports],
                waiters: vec![0; ports],
                dirs: vec![false; PROFILES.len()],
                tokens: vec![false; PROFILES.len() + 1],
            })
            .boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Op> {
        let ports = state.ports;
        let present: Vec<usize> = (0..state.instances.len()).filter(|&i| state.instances[i].life != Life::Gone).collect();
        let free: Vec<usize> = (0..ports).filter(|&p| !state.held(p)).collect();
        let foreign: Vec<usize> = (0..ports).filter(|&p| state.foreign[p]).collect();
        let unwaited: Vec<usize> = (0..ports).filter(|&p| state.waiters[p] == 0).collect();
        let profile = || proptest::option::weighted(0.6, 0..PROFILES.len());
        let mut options: Vec<(u32, BoxedStrategy<Op>)> = vec![
            (4, (0..ports, profile()).prop_map(|(port, profile)| Op::Start { port, profile }).boxed()),
            (3, (0..ports, 1usize..=MAX_WAITERS).prop_map(|(port, k)| Op::Wait { port, k }).boxed()),
            (3, (0..ports).prop_map(|port| Op::Stop { port }).boxed()),
        ];
        if !unwaited.is_empty() {
            options.push((3, (select(unwaited), profile()).prop_map(|(port, profile)| Op::Replace { port, profile }).boxed()));
        }
        if !free.is_empty() {
            options.push((1, select(free).prop_map(|port| Op::Foreign { port }).boxed()));
        }
        if !foreign.is_empty() {
            options.push((1, select(foreign).prop_map(|port| Op::ForeignClose { port }).boxed()));
        }
        if !present.is_empty() {
            let sig = prop_oneof![Just(Sig::Kill), Just(Sig::Term), Just(Sig::Stop), Just(Sig::Cont)];
            options.push((5, (select(present.clone()), sig).prop_map(|(inst, sig)| Op::Signal { inst, sig }).boxed()));
            options.push((2, select(present).prop_map(|inst| Op::Connect { inst }).boxed()));
        }
        Union::new_weighted(options).boxed()
    }

    fn preconditions(state: &Model, op: &Op) -> bool {
        let profile_ok = |p: Option<usize>| p.is_none_or(|p| p < PROFILES.len());
        match *op {
            Op::Start { port, profile } => port < state.ports && profile_ok(profile),
            Op::Wait { port, k } => {
                // A free port: one of the k takes it at once.
                let waiting = state.waiters.get(port).map(|&w| w + k - usize::from(!state.held(port)));
                port < state.ports && (1..=MAX_WAITERS).contains(&k) && waiting.is_some_and(|w| w <= MAX_WAITERS)
            }
            Op::Stop { port } => port < state.ports,
            Op::Replace { port, profile } => port < state.ports && state.waiters[port] == 0 && profile_ok(profile),
            Op::Signal { inst, .. } => state.instances.get(inst).is_some_and(|i| i.life != Life::Gone),
            Op::Foreign { port } => port < state.ports && !state.held(port),
            Op::ForeignClose { port } => port < state.ports && state.foreign[port],
            Op::Connect { inst } => state.instances.get(inst).is_some_and(|i| i.life == Life::Alive && i.clients < MAX_CLIENTS),
        }
    }

    fn apply(mut state: Model, op: &Op) -> Model {
        match *op {
            Op::Start { port, profile } => {
                if !state.held(port) {
                    state.take(port, profile);
                }
            }
            Op::Wait { port, k } => {
                if state.held(port) {
                    state.waiters[port] += k;
                } else {
                    state.take(port, None);
                    state.waiters[port] += k - 1;
                }
            }
            Op::Stop { port } => {
                if let Some(h) = state.live_holder(port) {
                    state.instances[h].life = Life::Gone;
                    state.release(port);
                }
            }
            Op::Replace { port, profile } => {
                if let Some(h) = state.live_holder(port) {
                    // The old gateway unlocks its directory before it releases the port (OPS-6).
                    state.instances[h].life = Life::Gone;
                    state.take(port, profile);
                } else if !state.held(port) {
                    state.take(port, profile);
                }
            }
            Op::Signal { inst, sig } => {
                let i = &mut state.instances[inst];
                i.life = i.life.after(sig);
                if i.life == Life::Gone {
                    let port = i.port;
                    state.release(port);
                }
            }
            Op::Foreign { port } => state.foreign[port] = true,
            Op::ForeignClose { port } => {
                state.foreign[port] = false;
                state.release(port);
            }
            Op::Connect { inst } => state.instances[inst].clients += 1,
        }
        state
    }
}

/// One real instance: a `gateway` process that printed its ready line and holds (or held) a port.
struct Instance {
    /// The harness's process (its stderr drained, so writes never fail), continued and killed if
    /// dropped unreaped.
    child: Proc,
    /// WebSocket clients that never read (dropped with the instance).
    clients: Vec<Ws>,
}

impl Instance {
    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.pid() as i32)
    }
}

/// A `gateway run --wait` process that has not printed anything yet; its first stdout line goes
/// to its port's channel (tagged with `id`).
struct Waiter {
    id: usize,
    /// `None` once it became an [`Instance`].
    child: Option<Proc>,
}

impl Waiter {
    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.pid())
    }
}

/// A spawned `gateway run` whose outcome is not known yet; killed (continued first) if dropped unsettled.
struct Spawned {
    child: Proc,
    first_line: Receiver<FirstLine>,
}

/// A process's first stdout line (empty: it ended without one), tagged with who wrote it.
type FirstLine = (usize, String);

/// Reads `stdout`'s first line on a thread of its own and sends it (empty at the end of the stream)
/// tagged with `id`; then reads on until the end (keeping the pipe open) and sends whatever else
/// comes, which CLI-1 forbids (nothing but the ready line is ever written on stdout).
fn forward_first_line(mut reader: BufReader<ChildStdout>, id: usize, tx: Sender<FirstLine>) {
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let at_end = line.is_empty();
        let _ = tx.send((id, line));
        if !at_end {
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            if !rest.is_empty() {
                let _ = tx.send((id, rest));
            }
        }
    });
}

/// The real system of one case. Dropping it continues and kills every process it started.
struct System {
    ports: Vec<u16>,
    /// The case's shared `XDG_STATE_HOME` (removed on drop).
    state_home: PathBuf,
    /// The test's own (foreign) listeners, by port index.
    foreign: Vec<Option<TcpListener>>,
    /// By model instance id; `None` once gone (reaped).
    instances: Vec<Option<Instance>>,
    /// The waiters of each port.
    waiters: Vec<Vec<Waiter>>,
    /// Each port's channel of waiters' first stdout lines: (waiter id, line).
    lines: Vec<(Sender<FirstLine>, Receiver<FirstLine>)>,
    next_waiter: usize,
    /// The model before the step being applied (`apply` is given the model after it).
    before: Model,
}

impl Drop for System {
    fn drop(&mut self) {
        // Each `Instance` and `Waiter` continues and kills its process when dropped.
        self.instances.clear();
        self.waiters.clear();
        let _ = std::fs::remove_dir_all(&self.state_home);
    }
}

/// How a start ended.
enum Outcome {
    Ready(Instance),
    /// Exited without a ready line: exit code, stderr (stdout was empty).
    Refused(Option<i32>, String),
}

/// LOCK-1, ERR-1, LOCK-3: a refusal is exactly ERR-1 as the first stderr line (stdout was empty),
/// exit code 3, or 5 when a live gateway holds the port (3 if the bounded probe was cut short).
fn assert_refused(code: Option<i32>, stderr: &str, port: u16, live_gateway: bool) {
    let expected = held_message(&format!("ws://127.0.0.1:{port}"));
    assert_eq!(stderr.lines().next(), Some(expected.as_str()), "ERR-1: first stderr line (whole stderr: {stderr:?})");
    let live_code = if live_gateway { Some(5) } else { None };
    assert!(code == Some(3) || code == live_code, "ERR-1/OPS-1: exit code {code:?}, want 3 (or 5 for a live gateway); stderr: {stderr}");
}

/// The kernel's state letter of `pid` (`Z` for an exited, unreaped child).
fn proc_state(pid: u32) -> Option<char> {
    gateway_harness::sockets::process_state(pid)
}

/// Whether `SIGTERM` is pending for the (stopped) process `pid`: the shared pending mask of
/// `/proc/<pid>/status` (a signal sent to a stopped process waits there until `SIGCONT`).
fn term_pending(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let mask = status.lines().find_map(|l| l.strip_prefix("ShdPnd:")).and_then(|m| u64::from_str_radix(m.trim(), 16).ok());
    mask.is_some_and(|m| m & (1 << (Signal::SIGTERM as u64 - 1)) != 0)
}

impl System {
    fn instance(&mut self, id: usize) -> &mut Instance {
        self.instances[id].as_mut().unwrap_or_else(|| panic!("instance {id} is gone"))
    }

    fn state_dir(&self, profile: usize) -> PathBuf {
        self.state_home.join("gateway-lock").join(PROFILES[profile])
    }

    /// A `gateway` command with the case's environment and nothing else that could change it.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = gateway_cmd(args);
        for var in ["GATEWAY_PORT", "GATEWAY_HOST", "GATEWAY_PROFILE", "GATEWAY_TOKEN", "GATEWAY_TOKEN_FILE", "NOTIFY_SOCKET"] {
            cmd.env_remove(var);
        }
        cmd.env("GATEWAY_LOG", "warn").env("XDG_STATE_HOME", &self.state_home);
        cmd
    }

    /// `gateway run --port P [--profile NAME] [extra]`.
    fn run_command(&self, port: usize, profile: Option<usize>, extra: &[&str]) -> Command {
        let p = self.ports[port].to_string();
        let mut args = vec!["run", "--port", &p];
        if let Some(q) = profile {
            args.extend(["--profile", PROFILES[q]]);
        }
        args.extend(extra);
        self.command(&args)
    }

    fn spawn(cmd: Command) -> Spawned {
        let mut child = Proc::spawn_with(cmd, Streams::default(), false).expect("spawn gateway");
        let (tx, rx) = mpsc::channel();
        forward_first_line(child.take_stdout().unwrap(), 0, tx);
        Spawned { child, first_line: rx }
    }

    /// Waits (bounded) for the ready line or the exit of a spawned `gateway run`.
    fn settle(spawned: Spawned, port: u16) -> Outcome {
        let line = match spawned.first_line.recv_timeout(DEADLINE) {
            Ok((_, line)) => line,
            Err(_) => panic!("gateway run on port {port} printed nothing and did not exit within {DEADLINE:?}"),
        };
        let mut child = spawned.child;
        if !line.is_empty() {
            assert_eq!(line, format!("{}\n", spec::ready_line("127.0.0.1", port)), "CLI-1/LOCK-3: the ready line");
            return Outcome::Ready(Instance { child, clients: Vec::new() });
        }
        let status =
            child.wait(DEADLINE).unwrap_or_else(|e| panic!("a refused gateway on port {port} closed stdout but did not exit: {e}"));
        let err = child.stderr(DEADLINE);
        Outcome::Refused(status.code(), err)
    }

    /// Waits (bounded) for instance `id` to exit after a signal; `graceful`: exit 0 (SHUT-1).
    fn reap(&mut self, id: usize, graceful: bool) {
        let mut inst = self.instances[id].take().unwrap_or_else(|| panic!("instance {id} is gone already"));
        let pid = inst.pid();
        let status = inst.child.wait(DEADLINE).unwrap_or_else(|e| panic!("instance {id} (pid {pid}): {e}"));
        if graceful {
            assert_eq!(status.code(), Some(0), "SHUT-1: graceful exit code of instance {id} (pid {pid})");
        } else {
            assert_eq!(status.code(), None, "instance {id} should have died of SIGKILL: {status:?}");
        }
    }

    /// OPS-4: the port with index `port` was just released and the model says a waiter took it:
    /// exactly one of its waiters prints the ready line (bounded), and becomes instance `id`.
    fn waiter_takes(&mut self, port: usize, id: usize) {
        let p = self.ports[port];
        let (winner, line) = match self.lines[port].1.recv_timeout(DEADLINE) {
            Ok(got) => got,
            Err(RecvTimeoutError::Timeout) => panic!("OPS-4: no waiter on port {p} took it within {DEADLINE:?} after its release"),
            Err(RecvTimeoutError::Disconnected) => unreachable!("the system keeps a sender"),
        };
        let at = self.waiters[port].iter().position(|w| w.id == winner).unwrap_or_else(|| panic!("waiter {winner} wrote {line:?} again"));
        let mut waiter = self.waiters[port].remove(at);
        if line.is_empty() {
            let child = waiter.child.as_mut().unwrap();
            let status = child.wait(DEADLINE);
            let err = child.stderr(DEADLINE);
            panic!("OPS-4: waiter {winner} on port {p} exited ({status:?}) instead of taking the released port; stderr: {err}");
        }
        assert_eq!(line, format!("{}\n", spec::ready_line("127.0.0.1", p)), "OPS-4/CLI-1: the waiter's ready line");
        assert_eq!(self.instances.len(), id, "instance ids follow the model");
        let child = waiter.child.take().unwrap();
        self.instances.push(Some(Instance { child, clients: Vec::new() }));
    }

    /// Records instances the model created in this step from waiters that took `port`.
    fn waiters_take(&mut self, model: &Model, port: usize) {
        while self.instances.len() < model.instances.len() {
            let id = self.instances.len();
            assert_eq!(model.instances[id].port, port, "model: a new instance on another port");
            self.waiter_takes(port, id);
        }
    }

    /// Starts `cmd` (a `gateway run` on port index `port`) and checks it against the model after
    /// the step: the new instance it becomes, or the refusal the model expects.
    fn start(&mut self, model: &Model, port: usize, profile: Option<usize>, cmd: Command) -> Option<Outcome> {
        let p = self.ports[port];
        let outcome = Self::settle(Self::spawn(cmd), p);
        let won = model.instances.len() > self.instances.len();
        match outcome {
            Outcome::Ready(inst) => {
                assert!(won, "LOCK-1/OPS-6: a start won port {p} the model says it cannot take ({:?})", self.before);
                self.instances.push(Some(inst));
                None
            }
            Outcome::Refused(code, err) if self.before.held(port) => Some(Outcome::Refused(code, err)),
            Outcome::Refused(code, err) => {
                // The port was free: only the profile's directory can refuse (OPS-6, ERR-OPS-1).
                let q = profile.unwrap_or_else(|| panic!("LOCK-1: a start on free port {p} was refused ({code:?}): {err}"));
                assert!(!won, "OPS-6: the start on free port {p} was refused ({code:?}), the model says it holds: {err}");
                let dir = self.state_dir(q);
                let expected = format!("StateDirError: state directory {} is already in use by another gateway", dir.display());
                assert_eq!(err.lines().next(), Some(expected.as_str()), "ERR-OPS-1: first stderr line (whole stderr: {err:?})");
                assert_eq!(code, Some(6), "OPS-6: exit code of a start on a locked state directory; stderr: {err}");
                None
            }
        }
    }
}

struct Operations;

impl StateMachineTest for Operations {
    type SystemUnderTest = System;
    type Reference = Reference;

    fn init_test(model: &Model) -> System {
        let ports = free_ports(model.ports);
        let state_home = case_dir("gateway-prop-ops");
        System {
            ports,
            state_home,
            foreign: (0..model.ports).map(|_| None).collect(),
            instances: Vec::new(),
            waiters: (0..model.ports).map(|_| Vec::new()).collect(),
            lines: (0..model.ports).map(|_| mpsc::channel()).collect(),
            next_waiter: 0,
            before: model.clone(),
        }
    }

    fn apply(mut sys: System, model: &Model, op: Op) -> System {
        let before = sys.before.clone();
        match op {
            Op::Start { port, profile } => {
                let p = sys.ports[port];
                if let Some(Outcome::Refused(code, err)) = sys.start(model, port, profile, sys.run_command(port, profile, &[])) {
                    assert_refused(code, &err, p, before.live_holder(port).is_some());
                    assert_eq!(model.instances.len(), sys.instances.len(), "a refused start created no instance");
                }
            }
            Op::Wait { port, k } => {
                let p = sys.ports[port];
                for _ in 0..k {
                    let mut child =
                        Proc::spawn_with(sys.run_command(port, None, &[WAIT_FLAG]), Streams::default(), false).expect("spawn waiter");
                    let id = sys.next_waiter;
                    sys.next_waiter += 1;
                    forward_first_line(child.take_stdout().unwrap(), id, sys.lines[port].0.clone());
                    sys.waiters[port].push(Waiter { id, child: Some(child) });
                }
                if !before.held(port) {
                    // OPS-4, LOCK-6: exactly one of the k takes the free port at once; the others
                    // wait (checked below, and in every later step).
                    assert_eq!(model.instances.len(), sys.instances.len() + 1, "model: a waiter takes free port {p}");
                    sys.waiters_take(model, port);
                }
            }
            Op::Stop { port } => {
                let p = sys.ports[port];
                let url = format!("ws://127.0.0.1:{p}");
                let stop = |sys: &System| run_cmd_to_exit(sys.command(&["stop", "--port", &p.to_string()]));
                if let Some(h) = before.live_holder(port) {
                    // OPS-3: a verified gateway of this user is stopped; an exit 4 means the load cut
                    // its verification short, and then it must not have been signalled.
                    let pid = sys.instance(h).child.pid();
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let (status, out, err) = stop(&sys);
                        if status.code() == Some(4) && attempt < ATTEMPTS {
                            assert!(err.starts_with(&format!("refusing to stop the holder of {url}")), "OPS-3: {err}");
                            assert!(proc_state(pid).is_some_and(|s| s != 'Z'), "OPS-3: stop refused, yet pid {pid} exited");
                            continue;
                        }
                        assert_eq!(status.code(), Some(0), "OPS-3: stop of live gateway pid {pid} (attempt {attempt}); stderr: {err}");
                        let prefix = format!("stopped gateway pid {pid} on {url}: port released after ");
                        assert!(out.starts_with(&prefix) && out.ends_with(" ms\n"), "OPS-3: stop's report: {out:?}");
                        // OPS-3: "stopped" means the port is released now (a waiter may hold it already).
                        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, p));
                        let owner = gateway_lock::find_owner(addr, Instant::now() + DEADLINE);
                        assert!(
                            !matches!(&owner, gateway_lock::Owner::Found(o) if o.pid == pid),
                            "OPS-3: stop exited 0, yet pid {pid} still listens on port {p}"
                        );
                        break;
                    }
                    sys.reap(h, true);
                    sys.waiters_take(model, port);
                } else {
                    let (status, out, err) = stop(&sys);
                    assert_eq!(out, "", "OPS-3: nothing on stdout when nothing was stopped");
                    if before.held(port) {
                        // A stopped gateway (silent) or a foreign holder: never signalled (exit 4); the
                        // checks below (and a later SIGCONT) find it untouched.
                        let why = if before.foreign[port] { "a foreign holder" } else { "a stopped gateway" };
                        assert_eq!(status.code(), Some(4), "OPS-3: stop of {why}; stderr: {err}");
                        assert!(err.starts_with(&format!("refusing to stop the holder of {url}: ")), "OPS-3: {err}");
                    } else {
                        assert_eq!(status.code(), Some(3), "OPS-3: stop on a free port; stderr: {err}");
                        assert!(err.starts_with(&spec::nothing_listening(&url)), "OPS-3: {err}");
                    }
                }
            }
            Op::Replace { port, profile } => {
                let p = sys.ports[port];
                if let Some(h) = before.live_holder(port) {
                    // OPS-5: the live gateway is asked to stop and the replacer takes the port; a
                    // refusal means the load cut the verification short: the holder is untouched.
                    let pid = sys.instance(h).child.pid();
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let cmd = sys.run_command(port, profile, &["--replace"]);
                        let outcome = System::settle(System::spawn(cmd), p);
                        match outcome {
                            Outcome::Refused(code, err) if err.starts_with("GatewayLockError:") && attempt < ATTEMPTS => {
                                assert_refused(code, &err, p, true);
                                assert!(proc_state(pid).is_some_and(|s| s != 'Z'), "OPS-5: the replace was refused, yet pid {pid} exited");
                                continue;
                            }
                            other => {
                                sys.reap(h, true);
                                let won = model.instances.len() > sys.instances.len();
                                match other {
                                    Outcome::Ready(inst) => {
                                        assert!(won, "OPS-6: the replacer took port {p}, but its profile's directory is locked");
                                        sys.instances.push(Some(inst));
                                    }
                                    Outcome::Refused(code, err) => {
                                        let q =
                                            profile.unwrap_or_else(|| panic!("OPS-5: replacing pid {pid} on {p} failed ({code:?}): {err}"));
                                        assert!(!won, "OPS-5: the replacer was refused ({code:?}): {err}");
                                        let dir = sys.state_dir(q);
                                        let expected = format!(
                                            "StateDirError: state directory {} is already in use by another gateway",
                                            dir.display()
                                        );
                                        assert_eq!(err.lines().next(), Some(expected.as_str()), "ERR-OPS-1 after a replace: {err:?}");
                                        assert_eq!(code, Some(6), "OPS-6: exit code; stderr: {err}");
                                    }
                                }
                                break;
                            }
                        }
                    }
                } else if let Some(Outcome::Refused(code, err)) =
                    sys.start(model, port, profile, sys.run_command(port, profile, &["--replace"]))
                {
                    // OPS-5: a stopped gateway or a foreign holder is never touched: the normal refusal.
                    assert_refused(code, &err, p, false);
                }
            }
            Op::Signal { inst: id, sig } => {
                let pid = sys.instance(id).pid();
                kill(pid, sig.nix()).expect("kill");
                match model.instances[id].life {
                    Life::Gone => {
                        sys.reap(id, sig != Sig::Kill);
                        sys.waiters_take(model, model.instances[id].port);
                    }
                    Life::Stopped { .. } => wait_stopped(pid, true),
                    Life::Alive => {}
                }
            }
            Op::Foreign { port } => {
                // A plain std listener that never accepts: not a gateway, and silent.
                let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, sys.ports[port])).expect("the model says the port is free");
                sys.foreign[port] = Some(listener);
            }
            Op::ForeignClose { port } => {
                sys.foreign[port] = None;
                sys.waiters_take(model, port);
            }
            Op::Connect { inst: id } => {
                let ws = ws_connect(SocketAddr::from((Ipv4Addr::LOCALHOST, sys.ports[model.instances[id].port])));
                sys.instance(id).clients.push(ws);
            }
        }
        assert_eq!(sys.instances.len(), model.instances.len(), "instances follow the model after {op:?}");
        sys.before = model.clone();
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
            // OPS-4: every waiter still runs and has printed nothing.
            assert_eq!(sys.waiters[idx].len(), model.waiters[idx], "waiters on port {port}");
            for w in &sys.waiters[idx] {
                let state = proc_state(w.pid());
                assert!(state.is_some_and(|s| s != 'Z'), "OPS-4: waiter {} on port {port} exited (state {state:?})", w.id);
            }
            match sys.lines[idx].1.try_recv() {
                Err(TryRecvError::Empty) => {}
                Ok((w, line)) => panic!("OPS-4: waiter {w} on port {port} wrote {line:?} while the model says nobody took the port"),
                Err(TryRecvError::Disconnected) => unreachable!("the system keeps a sender"),
            }
        }
        for (id, inst) in model.instances.iter().enumerate() {
            let real = sys.instances[id].as_ref();
            match inst.life {
                Life::Gone => assert!(real.is_none(), "instance {id} should be gone"),
                life => {
                    let real = real.unwrap_or_else(|| panic!("instance {id} missing"));
                    assert_eq!(real.clients.len(), inst.clients, "clients of instance {id}");
                    let pid = real.child.pid();
                    let state = proc_state(pid);
                    if life == Life::Alive {
                        assert!(state.is_some_and(|s| s != 'Z' && s != 'T'), "instance {id} (pid {pid}) should be alive: {state:?}");
                        // The port's holder is this very process, under its profile (OPS-6).
                        let response = http_get(SocketAddr::from((Ipv4Addr::LOCALHOST, sys.ports[inst.port])), "/healthz");
                        assert!(response.starts_with("HTTP/1.1 200 "), "SRV-1: instance {id} health: {response:?}");
                        let body = json_body(&response);
                        assert_eq!(body["pid"], u64::from(pid), "instance {id} holds its port: {body}");
                        let profile = inst.profile.map_or(serde_json::Value::Null, |q| PROFILES[q].into());
                        assert_eq!(body["profile"], profile, "OPS-6: instance {id}'s profile: {body}");
                    } else {
                        assert_eq!(state, Some('T'), "instance {id} (pid {pid}) should be stopped");
                        // OPS-3, OPS-5: nothing but the test's own `SIGTERM` ever signals a stopped gateway.
                        let pending = life == (Life::Stopped { exit_on_cont: true });
                        assert_eq!(term_pending(pid), pending, "OPS-3/OPS-5: SIGTERM pending for stopped instance {id} (pid {pid})");
                    }
                }
            }
        }
        // LOCK-3, OPS-6, DOOR-6: a refused start writes nothing: a profile's generated token (one
        // file per profile, whatever the port) exists iff an instance of it held a port.
        for (idx, &stored) in model.tokens.iter().enumerate() {
            let token = match idx < PROFILES.len() {
                true => sys.state_dir(idx).join("token"),
                false => sys.state_home.join("gateway-lock").join("token"),
            };
            assert_eq!(token.exists(), stored, "LOCK-3, DOOR-6: {} exists", token.display());
        }
        // OPS-6: a profile's directory exists iff an instance of it ever held a port (a refused
        // start creates nothing), and is locked exactly while such an instance lives.
        for q in 0..PROFILES.len() {
            let dir = sys.state_dir(q);
            assert_eq!(dir.exists(), model.dirs[q], "OPS-6: state directory {} exists", dir.display());
            if model.dirs[q] {
                let locked = matches!(gateway_lock::lock_state_dir(&dir), Err(gateway_lock::StateDirError::Locked { .. }));
                let holder = model.dir_holder(q);
                assert_eq!(locked, holder.is_some(), "OPS-6: {} locked; model: held by instance {holder:?}", dir.display());
            }
        }
    }
}

prop_state_machine! {
    #![proptest_config(config(DEFAULT_CASES, 400))]

    /// OPS-3, OPS-4, OPS-5, OPS-6 (also LOCK-1, ERR-1, LOCK-3, DOOR-6 on the way): random starts with and
    /// without profiles sharing one state home, bursts of `--wait` processes, `stop`, `--replace`,
    /// signals (incl. `SIGSTOP`/`SIGCONT`) and foreign listeners against the reference model.
    #[test]
    fn ops3_ops4_ops5_ops6_operations_follow_the_model(sequential 1..15 => Operations);
}
