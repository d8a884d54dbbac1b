//! The scenarios, one module per section of the spec. Each scenario names the rows it records, so
//! that `--only` runs just the scenarios a row needs.

mod cli;
mod door;
mod holder;
mod lock;
pub mod na;
mod protocol;
mod release;
mod shutdown;
mod timers;

use std::cell::RefCell;
use std::io::IsTerminal;
use std::sync::Mutex;

use gateway_harness::net::free_port;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::claims::Settings;
use crate::report::{Check, Report, Verdict};
use crate::subject::{Running, Start, Subject};

/// What a scenario works with.
pub struct Ctx<'a> {
    /// The implementation under test.
    pub subject: &'a Subject,
    /// The run's settings.
    pub settings: &'a Settings,
    /// The table being filled (shared with the interruption handler).
    pub report: &'a Mutex<Report>,
    /// The racing rows' choices, from `--seed`.
    pub rng: RefCell<StdRng>,
}

impl<'a> Ctx<'a> {
    /// A context for one run.
    pub fn new(subject: &'a Subject, settings: &'a Settings, report: &'a Mutex<Report>) -> Self {
        Ctx { subject, settings, report, rng: RefCell::new(StdRng::seed_from_u64(settings.seed)) }
    }

    /// Records a check's result for `id`.
    pub fn check(&self, id: &str, result: &Check) {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).check(id, result);
    }

    /// Records a verdict for `id`.
    pub fn record(&self, id: &str, verdict: Verdict, why: impl Into<String>) {
        self.report.lock().unwrap_or_else(|e| e.into_inner()).record(id, verdict, why);
    }

    /// A loopback port free right now.
    pub fn port(&self) -> u16 {
        free_port().unwrap_or_else(|e| panic!("no free loopback port: {e}"))
    }

    /// Starts a ready holder; a failure to start is a knock-on of CLI-1 (where it is judged).
    pub fn start(&self, port: u16) -> Result<Running, String> {
        self.start_with(port, &Start::default())
    }

    /// [`Ctx::start`] with variations.
    pub fn start_with(&self, port: u16, start: &Start) -> Result<Running, String> {
        self.subject.start(port, start).map_err(|e| format!("knock-on of CLI-1 (no instance started: {e})"))
    }
}

/// One scenario: the rows it records and how it runs.
pub struct Scenario {
    /// The rows it records.
    pub ids: &'static [&'static str],
    /// Runs it.
    pub run: fn(&Ctx),
}

/// Every scenario, in the order they run.
fn all() -> Vec<Scenario> {
    [
        lock::SCENARIOS,
        release::SCENARIOS,
        shutdown::SCENARIOS,
        cli::SCENARIOS,
        protocol::SCENARIOS,
        timers::SCENARIOS,
        door::SCENARIOS,
        holder::SCENARIOS,
    ]
    .into_iter()
    .flatten()
    .map(|(ids, run)| Scenario { ids, run: *run })
    .collect()
}

/// The table of scenarios each module exports: (rows, function).
pub type Table = &'static [(&'static [&'static str], fn(&Ctx))];

/// Runs every scenario (or those recording a row of `--only`), stopping early after the first
/// one if the implementation did not start at all. Progress goes to stderr on a terminal (or with
/// `--verbose`), so that a slow peer never leaves a person without output.
pub fn run_all(ctx: &Ctx) {
    for scenario in all() {
        let wanted = ctx.settings.only.is_empty() || scenario.ids.iter().any(|id| ctx.settings.only.iter().any(|o| o == id));
        if wanted {
            if ctx.settings.verbose || std::io::stderr().is_terminal() {
                eprintln!("gateway-conformance: {} ...", scenario.ids.join(" "));
            }
            (scenario.run)(ctx);
        }
        if ctx.report.lock().unwrap_or_else(|e| e.into_inner()).aborted.is_some() {
            return;
        }
    }
}

/// Every row a scenario records (for `--only`'s validation).
pub fn known_rows() -> Vec<&'static str> {
    all().iter().flat_map(|s| s.ids.iter().copied()).collect()
}

pub use holder::{hold, HOLD};
pub use na::not_applicable;
