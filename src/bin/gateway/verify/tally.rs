//! What a verification run counts and how it reports it, free of I/O: the invariants checked,
//! the check of one refused start (ERR-1, LOCK-3), the [`Tally`] and its summaries (VER-1).

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_harness::spec;

use super::schedule::KillSignal;

/// Violation details printed (and kept for `--json`); further violations are only counted.
pub(super) const MAX_REPORTED: usize = 20;

/// The invariants `verify` checks, by their IDs in `spec/invariants.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// At most one holder: no contender starts while another holds the port.
    Lock1,
    /// A refused start prints nothing on stdout.
    Lock3,
    /// Among contenders on a free port exactly one wins (no start refused while the port was free).
    Lock6,
    /// After its holder is gone, the port is free at once.
    Rel1,
    /// The same, with WebSocket clients connected at the kill.
    Rel2,
    /// A graceful signal closes every client with 1012 and exits 0.
    Shut1,
    /// A graceful shutdown ends within the deadline.
    Shut2,
    /// A second signal during a graceful shutdown changes nothing.
    Shut3,
    /// Every refusal carries the exact message (first stderr line) and exits 3 (or 5).
    Err1,
    /// A WebSocket client can connect to the holder.
    Srv2,
}

impl Invariant {
    /// Every invariant checked, in report order.
    pub const ALL: [Invariant; 10] = [
        Invariant::Lock1,
        Invariant::Lock3,
        Invariant::Lock6,
        Invariant::Rel1,
        Invariant::Rel2,
        Invariant::Shut1,
        Invariant::Shut2,
        Invariant::Shut3,
        Invariant::Err1,
        Invariant::Srv2,
    ];

    /// The ID as written in `spec/invariants.md`.
    pub fn id(self) -> &'static str {
        match self {
            Invariant::Lock1 => "LOCK-1",
            Invariant::Lock3 => "LOCK-3",
            Invariant::Lock6 => "LOCK-6",
            Invariant::Rel1 => "REL-1",
            Invariant::Rel2 => "REL-2",
            Invariant::Shut1 => "SHUT-1",
            Invariant::Shut2 => "SHUT-2",
            Invariant::Shut3 => "SHUT-3",
            Invariant::Err1 => "ERR-1",
            Invariant::Srv2 => "SRV-2",
        }
    }
}

/// The exact first stderr line of a refusal on `port` (ERR-1), as the harness holds it from `spec/`.
pub fn refusal_line(port: u16) -> String {
    spec::held_message(&spec::url("127.0.0.1", port))
}

/// Checks one refused start: exit code 3 (or 5, "held by a healthy gateway"), the exact first
/// stderr line, nothing on stdout. Returns the violations found.
pub fn check_refusal(port: u16, code: Option<i32>, stdout: &str, stderr: &str) -> Vec<(Invariant, String)> {
    let mut found = Vec::new();
    let first = stderr.lines().next().unwrap_or("");
    if first != refusal_line(port) {
        found.push((Invariant::Err1, format!("refusal's first stderr line was {first:?}")));
    }
    if !matches!(code, Some(spec::exit::HELD | spec::exit::HELD_BY_GATEWAY)) {
        let ended = code.map_or("a signal death".to_string(), |c| format!("exit {c}"));
        found.push((Invariant::Err1, format!("refusal ended with {ended}, not exit 3 or 5 (stderr {first:?})")));
    }
    if !stdout.is_empty() {
        found.push((Invariant::Lock3, format!("refused start printed {stdout:?} on stdout")));
    }
    found
}

/// One violation, as reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The cycle it happened in (from 1).
    pub cycle: u64,
    /// The invariant.
    pub invariant: Invariant,
    /// What was seen.
    pub detail: String,
}

/// The counts of a run; free of I/O.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Cycles completed.
    pub cycles: u64,
    /// Processes started.
    pub starts: u64,
    /// Starts that became the holder.
    pub holders: u64,
    /// Contenders started (in bursts, including races).
    pub contenders: u64,
    /// Starts refused with the lock error.
    pub refusals: u64,
    /// WebSocket clients connected.
    pub clients: u64,
    /// Signals delivered, by signal.
    pub kills: BTreeMap<KillSignal, u64>,
    /// Signals delivered in a mid-start fault (at once or after a jitter of up to 3 ms).
    pub kills_mid_start: u64,
    /// Of those, the ones that killed the start before its ready line.
    pub kills_before_ready: u64,
    /// Signals delivered during a graceful shutdown.
    pub kills_mid_shutdown: u64,
    /// Violations by invariant.
    pub violations: BTreeMap<Invariant, u64>,
    /// The first violations, in order.
    pub reported: Vec<Violation>,
}

impl Tally {
    /// Records a violation; returns it if it is among the first reported ones.
    pub fn violate(&mut self, cycle: u64, invariant: Invariant, detail: String) -> Option<&Violation> {
        *self.violations.entry(invariant).or_default() += 1;
        if self.reported.len() < MAX_REPORTED {
            self.reported.push(Violation { cycle, invariant, detail });
            self.reported.last()
        } else {
            None
        }
    }

    /// Records a delivered signal.
    pub fn killed(&mut self, signal: KillSignal) {
        *self.kills.entry(signal).or_default() += 1;
    }

    /// Total violations.
    pub fn violation_count(&self) -> u64 {
        self.violations.values().sum()
    }

    /// The machine-readable summary (`--json`).
    pub fn to_json(&self, seed: u64, port: u16, elapsed: Duration) -> serde_json::Value {
        let kills: serde_json::Map<_, _> =
            KillSignal::ALL.iter().map(|s| (s.name().to_string(), self.kills.get(s).copied().unwrap_or(0).into())).collect();
        let violations: serde_json::Map<_, _> =
            Invariant::ALL.iter().map(|i| (i.id().to_string(), self.violations.get(i).copied().unwrap_or(0).into())).collect();
        let reported: Vec<_> =
            self.reported.iter().map(|v| serde_json::json!({"cycle": v.cycle, "id": v.invariant.id(), "detail": v.detail})).collect();
        serde_json::json!({
            "ok": self.violation_count() == 0,
            "seed": seed,
            "port": port,
            "cycles": self.cycles,
            "elapsedMs": elapsed.as_millis() as u64,
            "starts": self.starts,
            "holders": self.holders,
            "contenders": self.contenders,
            "refusals": self.refusals,
            "clients": self.clients,
            "kills": kills,
            "killsMidStart": self.kills_mid_start,
            "killsBeforeReady": self.kills_before_ready,
            "killsMidShutdown": self.kills_mid_shutdown,
            "violations": violations,
            "violationCount": self.violation_count(),
            "firstViolations": reported,
        })
    }

    /// The human-readable summary.
    pub fn to_text(&self, seed: u64, port: u16, elapsed: Duration) -> String {
        let kills: Vec<String> =
            KillSignal::ALL.iter().map(|s| format!("{} {}", s.name(), self.kills.get(s).copied().unwrap_or(0))).collect();
        let violations: Vec<String> =
            Invariant::ALL.iter().map(|i| format!("{} {}", i.id(), self.violations.get(i).copied().unwrap_or(0))).collect();
        format!(
            "gateway verify: {} cycles on ws://127.0.0.1:{port} in {:.1} s (seed {seed})\n\
             starts      {} ({} holders, {} refused)\n\
             contenders  {}\n\
             clients     {}\n\
             kills       {} (mid-start {} of which {} before the ready line, mid-shutdown {})\n\
             violations  {} ({})\n\
             result      {}",
            self.cycles,
            elapsed.as_secs_f64(),
            self.starts,
            self.holders,
            self.refusals,
            self.contenders,
            self.clients,
            kills.join(", "),
            self.kills_mid_start,
            self.kills_before_ready,
            self.kills_mid_shutdown,
            self.violation_count(),
            violations.join(", "),
            if self.violation_count() == 0 { "PASSED" } else { "FAILED" },
        )
    }
}
