//! The driver of a verification run: the loop that carries out each cycle's plan on the subject's
//! instances ([`super::subject`]) and WebSocket clients (the harness's), and checks the invariants
//! after every step.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gateway_harness::net::loopback;
use gateway_harness::proc::describe_status;
use gateway_harness::sockets::describe_holders;
use gateway_harness::spec;
use gateway_harness::ws::{self, Frame, Ws};
use indicatif::ProgressBar;
use rand::rngs::StdRng;

use super::schedule::{CyclePlan, Ending, KillSignal, Limits, MidStart};
use super::subject::{Instance as Proc, Start, Subject};
use super::tally::{check_refusal, Invariant, Tally};
use super::VerifyError;

/// How long anything that should happen "at once" may take before it counts as a hang.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The close code of a graceful shutdown (SHUT-1).
const SERVICE_RESTART: u16 = spec::close::SERVICE_RESTART.0;

/// SIGABRT must not write core files (the kernel's `core` pattern writes into the working
/// directory): children inherit this limit.
pub(super) fn disable_core_dumps() {
    use nix::sys::resource::{setrlimit, Resource};
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
}

/// Reads until the close frame (skipping data frames); the close reply is queued, not yet flushed.
fn read_close(ws: &mut Ws) -> Result<u16, String> {
    loop {
        if let Frame::Close(code, _) = ws::recv(ws)? {
            return Ok(code);
        }
    }
}

/// A close code as seen, for a violation's detail.
fn seen_close(got: &Result<u16, String>) -> String {
    match got {
        Ok(code) => format!("close {code}"),
        Err(err) => format!("no close ({err})"),
    }
}

/// The state of a run: what to start, the schedule's RNG, and the counts so far.
pub(super) struct Verifier {
    pub(super) subject: Subject,
    pub(super) port: u16,
    pub(super) rng: StdRng,
    pub(super) limits: Limits,
    pub(super) tally: Tally,
    pub(super) cycle: u64,
    pub(super) progress: ProgressBar,
}

impl Verifier {
    fn addr(&self) -> SocketAddr {
        loopback(self.port)
    }

    fn violate(&mut self, invariant: Invariant, detail: String) {
        let cycle = self.cycle;
        if let Some(v) = self.tally.violate(cycle, invariant, detail) {
            let line = format!("violation {} in cycle {}: {}", v.invariant.id(), v.cycle, v.detail);
            self.progress.suspend(|| crate::report::eprint_line(&line));
        }
    }

    fn spawn(&mut self) -> Result<Proc, VerifyError> {
        self.tally.starts += 1;
        self.subject.spawn()
    }

    fn signal(&mut self, proc: &Proc, signal: KillSignal) {
        if proc.signal(signal) {
            self.tally.killed(signal);
        }
    }

    /// The port must be free now that nothing holds it: a bind of our own succeeds.
    fn check_free(&mut self, invariant: Invariant, after: &str) {
        if let Err(err) = std::net::TcpListener::bind(self.addr()) {
            let holders = describe_holders(self.addr());
            self.violate(invariant, format!("port still held after {after}: {err} ({holders})"));
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
            match proc.start_outcome(deadline) {
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
        } else if proc.printed_nothing() {
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
            match ws::open(self.addr(), None, DEADLINE) {
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
                    let got = read_close(ws);
                    if got != Ok(SERVICE_RESTART) {
                        self.violate(Invariant::Shut1, format!("client got {} on {}, not close 1012", seen_close(&got), first.name()));
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
                let got = read_close(ws);
                let _ = ws.flush();
                if got != Ok(SERVICE_RESTART) {
                    self.violate(invariant, format!("client got {} on {what}, not close 1012", seen_close(&got)));
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
            Some(status) if graceful && status.code() != Some(spec::exit::OK) => {
                self.violate(invariant, format!("holder ended with {} after {what}, not exit 0", describe_status(status)));
            }
            Some(_) => {}
            None => {
                self.violate(Invariant::Shut2, format!("holder did not exit within {DEADLINE:?} after {what}"));
                holder.kill_and_reap();
            }
        }
    }
}
