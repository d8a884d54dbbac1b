//! Throttling failed authentication (`spec/protocol.md`, DOOR-8), free of I/O.
//!
//! Every client of a loopback gateway comes from `127.0.0.1`, so nothing can be told apart by
//! address: the throttle is global. Failed `connect`s (a missing or wrong token) fill a leaky
//! bucket of [`BURST`] that drains at [`RATE_PER_SEC`]. While the bucket is full, the first frame
//! of every unauthenticated client waits for its turn before it is looked at: turns are spaced
//! [`SPACING`] apart, first come first served. So an attacker gets at most `BURST + RATE_PER_SEC · t`
//! guesses in any `t` seconds (plus 2) however many connections it opens, and a client with the right
//! token waits at most for the turns already handed out (with a one-connection attacker loop, one
//! turn) — it is never refused.

use std::time::{Duration, Instant};

/// Failed `connect`s allowed at once before the throttle engages.
pub(crate) const BURST: u32 = 20;
/// Failed `connect`s per second the bucket drains (the sustained rate an attacker gets).
pub(crate) const RATE_PER_SEC: u32 = 5;
/// The time between two turns while throttled (`1 / RATE_PER_SEC`).
pub(crate) const SPACING: Duration = Duration::from_millis(1000 / RATE_PER_SEC as u64);
/// At most one log line per this window while throttled.
pub(crate) const LOG_WINDOW: Duration = Duration::from_secs(10);

/// The throttle's state. `now` is passed in by the caller (the server uses the runtime's clock).
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    /// Recent failures, draining at [`RATE_PER_SEC`].
    level: f64,
    /// When `level` was last drained.
    at: Instant,
    /// The first turn not yet handed out (while throttled).
    next_turn: Instant,
    /// When the throttle last logged, and failures since then.
    logged: Option<Instant>,
    failures_since_log: u64,
}

/// A log line to write (the caller logs it; it never holds a token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Engaged {
    /// Failed `connect`s since the previous line.
    pub(crate) failures: u64,
}

impl Throttle {
    /// An empty bucket at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Throttle { level: 0.0, at: now, next_turn: now, logged: None, failures_since_log: 0 }
    }

    fn drain(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level - elapsed * f64::from(RATE_PER_SEC)).max(0.0);
        self.at = self.at.max(now);
    }

    /// Whether failures have filled the bucket.
    pub(crate) fn engaged(&mut self, now: Instant) -> bool {
        self.drain(now);
        self.level > f64::from(BURST) - 1.0
    }

    /// An unauthenticated client's frame is about to be looked at: how long it must wait first
    /// (zero unless the throttle is engaged). Each call while engaged hands out the next turn.
    pub(crate) fn turn(&mut self, now: Instant) -> Duration {
        if !self.engaged(now) {
            return Duration::ZERO;
        }
        let turn = self.next_turn.max(now);
        self.next_turn = turn + SPACING;
        turn - now
    }

    /// Records the outcome of a `connect` (`failed`: missing or wrong token). Returns a line to log
    /// when a failure finds the throttle engaged and nothing was logged within [`LOG_WINDOW`].
    pub(crate) fn record(&mut self, now: Instant, failed: bool) -> Option<Engaged> {
        if !failed {
            return None;
        }
        self.drain(now);
        // Not capped: a long attack keeps the throttle engaged for as long after it as it lasted
        // beyond the burst (turns stay spaced; nobody is refused).
        self.level += 1.0;
        self.failures_since_log += 1;
        let quiet = self.logged.is_none_or(|at| now.saturating_duration_since(at) >= LOG_WINDOW);
        if self.engaged(now) && quiet {
            self.logged = Some(now);
            return Some(Engaged { failures: std::mem::take(&mut self.failures_since_log) });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// DOOR-8: the first BURST failures pass at once; then turns come SPACING apart; a success is
    /// never counted; the bucket drains back to free passage.
    #[test]
    fn door8_burst_then_spaced_turns_then_free_again() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0);
        for _ in 0..BURST - 1 {
            assert_eq!(t.turn(t0), Duration::ZERO);
            assert_eq!(t.record(t0, true), None);
        }
        assert_eq!(t.record(t0, false), None, "a success is not counted");
        assert_eq!(t.turn(t0), Duration::ZERO);
        assert_eq!(t.record(t0, true), Some(Engaged { failures: BURST as u64 }), "logged once as it engages");
        assert_eq!(t.turn(t0), Duration::ZERO, "the first turn is now");
        assert_eq!(t.turn(t0), SPACING);
        assert_eq!(t.turn(t0), SPACING * 2);
        assert_eq!(t.record(t0, true), None, "not logged again within the window");
        let later = t0 + Duration::from_secs(u64::from(BURST / RATE_PER_SEC) + 1);
        assert_eq!(t.turn(later), Duration::ZERO, "drained");
    }

    /// DOOR-8, as `spec/protocol.md` states it for port authors: once the bucket has drained below
    /// full, a newcomer is looked at at once although turns handed out earlier are still to come
    /// (the bucket decides, not the queue); the notice counts every failed `connect` since the
    /// previous notice, those within the quiet window included.
    #[test]
    fn door8_a_drained_bucket_lets_a_newcomer_pass_and_the_notice_counts_every_failure() {
        let t0 = Instant::now();
        let mut t = Throttle::new(t0);
        for _ in 0..BURST - 1 {
            assert_eq!(t.record(t0, true), None);
        }
        assert_eq!(t.record(t0, true), Some(Engaged { failures: u64::from(BURST) }));
        let turns: Vec<Duration> = (0..4).map(|_| t.turn(t0)).collect();
        assert_eq!(turns, [Duration::ZERO, SPACING, SPACING * 2, SPACING * 3]);
        let drained = t0 + Duration::from_millis(300);
        assert_eq!(t.turn(drained), Duration::ZERO, "below full: at once, though turns at 400 and 600 ms are still to come");
        assert_eq!(t.record(drained, true), None, "full again, but within the quiet window");
        let later = t0 + LOG_WINDOW + Duration::from_secs(1);
        for _ in 0..BURST - 1 {
            assert_eq!(t.record(later, true), None);
        }
        assert_eq!(t.record(later, true), Some(Engaged { failures: u64::from(BURST) + 1 }), "the quiet failure is carried");
        assert_eq!(t.turn(later), Duration::ZERO, "turns handed out long ago do not delay a new one");
        assert_eq!(t.turn(later), SPACING);
    }

    /// Runs an attack: attempts arriving at `arrivals` (sorted), every guess wrong; returns
    /// the times the guesses were looked at, in order. Events are taken in time order, as the
    /// single-threaded server takes them.
    fn attack(arrivals: &[Instant]) -> Vec<Instant> {
        let mut t = Throttle::new(arrivals[0]);
        let mut pending = std::collections::BinaryHeap::new();
        let mut looked_at = Vec::new();
        let mut next = arrivals.iter().peekable();
        loop {
            let due = pending.peek().map(|std::cmp::Reverse(at)| *at);
            let arrival = next.peek().map(|a| **a);
            match (arrival, due) {
                (_, Some(at)) if arrival.is_none_or(|a| at <= a) => {
                    pending.pop();
                    t.record(at, true);
                    looked_at.push(at);
                }
                (Some(now), _) => {
                    next.next();
                    match t.turn(now) {
                        Duration::ZERO => {
                            t.record(now, true);
                            looked_at.push(now);
                        }
                        wait => pending.push(std::cmp::Reverse(now + wait)),
                    }
                }
                (None, _) => return looked_at,
            }
        }
    }

    proptest! {
        /// DOOR-8: however the attempts arrive (many clients at once, or one after another),
        /// the wrong guesses looked at within any t seconds are at most BURST + 2 + RATE_PER_SEC · t.
        #[test]
        fn door8_guesses_are_bounded(gaps in proptest::collection::vec(0u64..400, 1..400)) {
            let t0 = Instant::now();
            let arrivals: Vec<Instant> = gaps.iter().scan(t0, |at, gap| { *at += Duration::from_millis(*gap); Some(*at) }).collect();
            let looked_at = attack(&arrivals);
            prop_assert_eq!(looked_at.len(), arrivals.len(), "every attempt is looked at in the end (none refused)");
            for i in 0..looked_at.len() {
                for j in i..looked_at.len() {
                    let secs = looked_at[j].duration_since(looked_at[i]).as_secs_f64();
                    let allowed = f64::from(BURST) + 2.0 + f64::from(RATE_PER_SEC) * secs + 1e-6;
                    prop_assert!(((j - i + 1) as f64) <= allowed, "{} guesses in {} s", j - i + 1, secs);
                }
            }
        }
    }
}
