//! The schedule of a verification run, free of I/O: every cycle drawn from one seeded RNG
//! ([`CyclePlan::draw`]), so a seed reproduces the schedule of a failing run (VER-2).
//!
//! Self-contained (only `rand`): the property tests of `gateway verify` draw the same schedule
//! from this very file.

use rand::Rng;

/// The signals a holder is killed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KillSignal {
    /// `SIGKILL`: no chance to clean up.
    Kill,
    /// `SIGTERM`: graceful shutdown (once the handlers are in place).
    Term,
    /// `SIGINT`: graceful shutdown (once the handlers are in place).
    Int,
    /// `SIGABRT`: abort, as a crash would.
    Abrt,
}

impl KillSignal {
    /// Every signal, in report order.
    pub const ALL: [KillSignal; 4] = [KillSignal::Kill, KillSignal::Term, KillSignal::Int, KillSignal::Abrt];

    /// The signal's name (`SIGKILL`, ...).
    pub fn name(self) -> &'static str {
        match self {
            KillSignal::Kill => "SIGKILL",
            KillSignal::Term => "SIGTERM",
            KillSignal::Int => "SIGINT",
            KillSignal::Abrt => "SIGABRT",
        }
    }

    /// Whether a ready gateway shuts down gracefully on it.
    pub fn graceful(self) -> bool {
        matches!(self, KillSignal::Term | KillSignal::Int)
    }

    fn draw(rng: &mut impl Rng) -> Self {
        Self::ALL[rng.random_range(0..Self::ALL.len())]
    }

    fn draw_graceful(rng: &mut impl Rng) -> Self {
        if rng.random_bool(0.5) {
            KillSignal::Term
        } else {
            KillSignal::Int
        }
    }
}

/// Bounds of a cycle's random choices (`--max-burst`, `--max-clients`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most contenders started at once.
    pub max_burst: usize,
    /// Most WebSocket clients connected to a holder.
    pub max_clients: usize,
}

/// A start that is killed before (or around) its ready line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MidStart {
    /// The signal.
    pub signal: KillSignal,
    /// Pause between spawn and signal, in microseconds (0: at once). Chooses the moment of the fault.
    pub jitter_us: u64,
}

/// How a cycle's holder ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// One signal while serving.
    Serving(KillSignal),
    /// A graceful signal, then a second signal while the holder is still draining.
    MidShutdown {
        /// SIGTERM or SIGINT.
        first: KillSignal,
        /// Any signal.
        second: KillSignal,
    },
    /// A signal raced by a burst of fresh contenders.
    Race {
        /// The signal.
        signal: KillSignal,
        /// Contenders started at the same moment.
        contenders: usize,
        /// Whether the signal is sent before the contenders are spawned.
        signal_first: bool,
    },
}

/// The schedule of one cycle, drawn from the seeded RNG; free of I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CyclePlan {
    /// A lone start killed mid-start, before the burst.
    pub mid_start: Option<MidStart>,
    /// Contenders racing for the free port (exactly one must win).
    pub burst: usize,
    /// WebSocket clients connected to the winner.
    pub clients: usize,
    /// Contenders started against the holder (all must be refused).
    pub held_burst: usize,
    /// How the holder ends.
    pub ending: Ending,
}

impl CyclePlan {
    /// Draws a cycle. The same RNG state gives the same plan.
    pub fn draw(rng: &mut impl Rng, limits: &Limits) -> Self {
        let max_burst = limits.max_burst.max(1);
        let mid_start = rng.random_bool(0.3).then(|| MidStart {
            signal: KillSignal::draw(rng),
            jitter_us: if rng.random_bool(0.5) { 0 } else { rng.random_range(0..3_000) },
        });
        let burst = rng.random_range(1..=max_burst);
        let clients = rng.random_range(0..=limits.max_clients);
        let held_burst = rng.random_range(0..=max_burst);
        let ending = match rng.random_range(0..3) {
            0 => Ending::Serving(KillSignal::draw(rng)),
            1 => Ending::MidShutdown { first: KillSignal::draw_graceful(rng), second: KillSignal::draw(rng) },
            _ => Ending::Race {
                signal: KillSignal::draw(rng),
                contenders: rng.random_range(1..=max_burst),
                signal_first: rng.random_bool(0.5),
            },
        };
        CyclePlan { mid_start, burst, clients, held_burst, ending }
    }
}
